// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IAppRegistry} from "./IAppRegistry.sol";
import {IDeploymentObserver} from "./IDeploymentObserver.sol";
import {IDeviceRegistry} from "./IDeviceRegistry.sol";

/// @title IPlacementRegistry
/// @notice Devices claim replicas of deployments; every transition of a placement is an event and is kept
/// on chain for auditors.
/// @dev A placement id is `(deploymentId << 32) | n`, where n counts the deployment's placements from 1,
/// so the placements of a deployment are enumerable without an index. Lifecycle:
/// Claimed -> Running -> Released | Failed | Expired (and Claimed -> Released | Failed | Expired).
/// Expired and Superseded are also derived when read: a placement claimed before its device was expired
/// (older device generation) reads as Expired until {finalizeExpired} records it; a live placement claimed
/// in an older deployment generation (before a roll or stop) reads as Superseded until it is released.
interface IPlacementRegistry is IDeploymentObserver {
    /// @notice The state of a placement as read.
    enum PlacementState {
        None,
        Claimed,
        Running,
        Released,
        Failed,
        Expired,
        Superseded
    }

    /// @notice Why a worker reports a placement failed.
    enum FailureCode {
        None,
        ImageFetchFailed,
        ManifestInvalid,
        StartFailed,
        OOMKilled,
        Evicted,
        HealthCheckFailed,
        Other,
        ClaimDeadlineMissed
    }

    /// @notice Why a placement was released.
    /// @dev ByDevice: its device (owner or operator) let it go. ByAppOwner: the app owner took it back.
    /// ScaleDown: released by either while the deployment had more live replicas than asked for.
    /// Superseded: the deployment rolled to a newer version. DeploymentStopped: the deployment stopped.
    enum ReleaseReason {
        None,
        ByDevice,
        ByAppOwner,
        ScaleDown,
        Superseded,
        DeploymentStopped
    }

    /// @notice A placement as returned by the views.
    /// @dev `code` is a {FailureCode} for Failed and a {ReleaseReason} for Released. Times are unix
    /// seconds and 0 when the transition has not happened; `endedAt` of a derived Expired placement is the
    /// time its device was expired.
    struct Placement {
        uint64 placementId;
        uint32 deploymentId;
        uint32 deviceId;
        uint32 appId;
        uint32 version;
        uint32 deploymentGeneration;
        uint32 deviceGeneration;
        PlacementState state;
        uint8 code;
        uint40 claimedAt;
        uint40 claimedBlock;
        uint40 runningAt;
        uint40 runningBlock;
        uint40 endedAt;
        uint40 endedBlock;
    }

    /// @notice One transition of a placement, for {placementHistory}.
    struct Transition {
        PlacementState state;
        uint8 code;
        uint40 timestamp;
        uint40 blockNumber;
    }

    /// @notice A device's reservations and placement list head.
    /// @dev `generation` grows by one each time the device is expired; reservations and `livePlacements`
    /// count only placements of the current generation that have not ended (superseded ones included).
    struct DeviceUsage {
        uint32 cpuReservedMillicores;
        uint32 memoryReservedMiB;
        uint32 livePlacements;
        uint32 generation;
        uint32 placementCount;
        uint64 lastPlacementId;
    }

    /// @notice A deployment's placement counters.
    /// @dev `liveReplicas` counts placements of the current deployment generation that have not ended,
    /// including those of expired devices not yet finalized; `placementCount` counts every claim ever;
    /// `runningReplicas` counts the live ones of the current generation confirmed Running.
    struct DeploymentUsage {
        uint32 generation;
        uint32 liveReplicas;
        uint32 placementCount;
        uint32 runningReplicas;
    }

    // ---------------------------------------------------------------- errors

    /// @notice The caller is neither the device's owner nor its operator (nor, for a release, the app owner).
    /// @param deviceId The device.
    /// @param account The caller.
    error PlacementRegistryUnauthorizedAccount(uint32 deviceId, address account);

    /// @notice The device is not active (it is exiting or has exited).
    error PlacementRegistryDeviceNotActive(uint32 deviceId, IDeviceRegistry.DeviceStatus status);

    /// @notice The device's stake is below the minimum.
    error PlacementRegistryDeviceUnderstaked(uint32 deviceId, uint256 stake);

    /// @notice The device's stake does not cover the minimum plus the collateral of one more placement.
    /// @param stake Its stake.
    /// @param required minStake + collateralPerPlacement * (its live placements + 1).
    error PlacementRegistryInsufficientCollateral(uint32 deviceId, uint256 stake, uint256 required);

    /// @notice The placement's deployment rolled or stopped since the claim: it can no longer be confirmed.
    /// @param placementId The placement.
    /// @param claimedGeneration The deployment generation it was claimed in.
    /// @param generation The deployment's generation now.
    error PlacementRegistryPlacementSuperseded(
        uint64 placementId,
        uint32 claimedGeneration,
        uint32 generation
    );

    /// @notice Make-before-break: while a deployment rolls, only the device or the app owner may release a
    /// superseded placement, until the new generation runs all its replicas or the device is stale.
    /// @param placementId The placement.
    /// @param runningReplicas Replicas of the new generation confirmed Running.
    /// @param replicas Replicas the deployment asks for.
    error PlacementRegistryRollInProgress(uint64 placementId, uint32 runningReplicas, uint32 replicas);

    /// @notice The version of the deployment is deprecated: no new replica of it may be claimed.
    error PlacementRegistryVersionDeprecated(uint32 deploymentId, uint32 appId, uint32 version);

    /// @notice The device's last heartbeat is older than the TTL.
    error PlacementRegistryDeviceStale(uint32 deviceId, uint40 lastHeartbeat);

    /// @notice The device's heartbeat is fresh, so it cannot be expired.
    error PlacementRegistryDeviceFresh(uint32 deviceId, uint40 lastHeartbeat);

    /// @notice The device has no live placement, so there is nothing to expire.
    error PlacementRegistryNoLivePlacements(uint32 deviceId);

    /// @notice The deployment is stopped.
    error PlacementRegistryDeploymentNotActive(uint32 deploymentId);

    /// @notice The deployment's version has no image for the device's platform.
    /// @param platformKey keccak256 of the device's platform.
    error PlacementRegistryPlatformUnsupported(uint32 deploymentId, uint32 deviceId, bytes32 platformKey);

    /// @notice The device lacks a label the deployment requires.
    /// @param labelKey The key of the missing label.
    error PlacementRegistryLabelMissing(uint32 deploymentId, uint32 deviceId, bytes8 labelKey);

    /// @notice The band's CPU minimum does not fit in the device's free CPU.
    error PlacementRegistryCpuCapacityExceeded(uint32 deviceId, uint32 requested, uint32 free);

    /// @notice The band's memory minimum does not fit in the device's free memory.
    error PlacementRegistryMemoryCapacityExceeded(uint32 deviceId, uint32 requested, uint32 free);

    /// @notice The device already holds a live replica of the deployment.
    error PlacementRegistryAlreadyPlaced(uint32 deploymentId, uint32 deviceId, uint64 placementId);

    /// @notice The deployment already has as many live replicas as it asks for.
    error PlacementRegistryReplicasExhausted(uint32 deploymentId, uint32 replicas, uint32 liveReplicas);

    /// @notice No placement has this id.
    error PlacementRegistryUnknownPlacement(uint64 placementId);

    /// @notice The placement is not in a state the call can leave.
    /// @param state Its recorded state.
    error PlacementRegistryInvalidTransition(uint64 placementId, PlacementState state);

    /// @notice The placement's device was expired; finalize it with {finalizeExpired}.
    error PlacementRegistryPlacementExpired(uint64 placementId);

    /// @notice The placement's device has not been expired since the claim.
    error PlacementRegistryNotExpired(uint64 placementId);

    /// @notice Only the AppRegistry may report new deployments.
    /// @param account The caller.
    error PlacementRegistryNotAppRegistry(address account);

    /// @notice A failure needs a code other than None, and a worker cannot report ClaimDeadlineMissed
    /// (only {finalizeOverdueClaim} records it).
    error PlacementRegistryInvalidFailureCode(FailureCode code);

    /// @notice The claim is not overdue yet: it may be finalized from `deadline` on.
    /// @param placementId The placement.
    /// @param deadline When the claim becomes overdue (unix seconds): its claim time plus {claimDeadline}.
    error PlacementRegistryClaimNotOverdue(uint64 placementId, uint40 deadline);

    /// @notice A page cursor must be 0 or a placement of the device or deployment paged.
    /// @param cursor The cursor given.
    error PlacementRegistryInvalidCursor(uint64 cursor);

    /// @notice A claim deadline must be from 1 s to 30 days.
    /// @param claimDeadline The value given (seconds).
    error PlacementRegistryInvalidClaimDeadline(uint40 claimDeadline);

    // ---------------------------------------------------------------- events

    /// @notice A device claimed a replica.
    /// @dev With the deployment's DeploymentCreated/DeploymentRolled event (which carries the version's
    /// manifest and image CIDs) the worker has all it needs to start the replica.
    /// @param placementId The new placement.
    /// @param deploymentId The deployment.
    /// @param deviceId The device.
    /// @param appId The app.
    /// @param version The version to run.
    /// @param deploymentGeneration The deployment generation claimed.
    /// @param deviceGeneration The device generation claimed in.
    /// @param band The version's band; the minimum is reserved on the device.
    event PlacementClaimed(
        uint64 indexed placementId,
        uint32 indexed deploymentId,
        uint32 indexed deviceId,
        uint32 appId,
        uint32 version,
        uint32 deploymentGeneration,
        uint32 deviceGeneration,
        IAppRegistry.ResourceBand band
    );

    /// @notice The worker confirmed the replica runs (Claimed -> Running).
    event PlacementConfirmed(
        uint64 indexed placementId,
        uint32 indexed deploymentId,
        uint32 indexed deviceId
    );

    /// @notice A placement was released; its reservation is freed.
    /// @param reason See {ReleaseReason}.
    /// @param releasedBy The caller.
    /// @param previousState Claimed or Running.
    event PlacementReleased(
        uint64 indexed placementId,
        uint32 indexed deploymentId,
        uint32 indexed deviceId,
        ReleaseReason reason,
        address releasedBy,
        PlacementState previousState
    );

    /// @notice The worker reported a failure; the reservation is freed and the replica may be claimed again.
    /// @param code The failure.
    /// @param previousState Claimed or Running.
    event PlacementFailed(
        uint64 indexed placementId,
        uint32 indexed deploymentId,
        uint32 indexed deviceId,
        FailureCode code,
        PlacementState previousState
    );

    /// @notice An expired placement was recorded as Expired, and the deployment's replica freed.
    /// @param deviceGeneration The device generation it was claimed in (the one that expired).
    /// @param expiredAt When the device was expired (unix seconds); the block time is the finalization's.
    /// @param expiredBlock The block in which the device was expired.
    /// @param previousState Claimed or Running.
    event PlacementExpired(
        uint64 indexed placementId,
        uint32 indexed deploymentId,
        uint32 indexed deviceId,
        uint32 deviceGeneration,
        uint40 expiredAt,
        uint40 expiredBlock,
        PlacementState previousState
    );

    /// @notice A stale device's placements expired at once; it was slashed (see DeviceSlashed).
    /// @param deviceId The device.
    /// @param expiredBy The caller, who received the bounty.
    /// @param generation The device generation that ended; placements claimed in it are Expired.
    /// @param placements How many live placements it held.
    event DeviceExpired(
        uint32 indexed deviceId,
        address indexed expiredBy,
        uint32 generation,
        uint32 placements
    );

    /// @notice The claim deadline changed.
    /// @param claimDeadline Seconds a claim may stay unconfirmed before anyone may finalize it as Failed.
    event ClaimDeadlineChanged(uint40 claimDeadline);

    // ---------------------------------------------------------------- functions

    /// @notice Claims one replica of a deployment for a device. Device owner or operator; pausable.
    /// @dev Checks, in order: device authorization, active, staked, fresh; deployment active; image for
    /// the platform; labels; at most one live replica per device; replicas left; CPU and memory fit.
    /// A placement of this deployment on this device that expired or was superseded is closed first.
    /// @return placementId The new placement.
    function claim(uint32 deploymentId, uint32 deviceId) external returns (uint64 placementId);

    /// @notice Confirms the replica runs (Claimed -> Running). Device owner or operator; reverts
    /// PlacementRegistryPlacementSuperseded once the deployment has rolled or stopped since the claim.
    function confirm(uint64 placementId) external;

    /// @notice Reports a failure (Claimed|Running -> Failed). Device owner or operator.
    function fail(uint64 placementId, FailureCode code) external;

    /// @notice Releases a placement (Claimed|Running -> Released).
    /// @dev The device may release its placements and the app owner any placement of its deployments.
    /// Anyone may release a placement of a stopped deployment, and a superseded one of an active deployment
    /// once the new generation has as many Running replicas as asked for or the device is stale
    /// (make-before-break; PlacementRegistryRollInProgress otherwise). The reason is derived.
    function release(uint64 placementId) external;

    /// @notice Expires every live placement of a stale device at once, slashes it and pays the caller a
    /// bounty. Anyone. O(1): the device generation moves on; placements are finalized one by one later.
    /// @dev The device's own owner or operator may expire it too, but gets no bounty: all of the slash
    /// goes to the treasury.
    /// @return slashed The stake taken from the device.
    /// @return bounty The caller's share of it.
    function expireDevice(uint32 deviceId) external returns (uint256 slashed, uint256 bounty);

    /// @notice Records an expired placement as Expired and frees its replica. Anyone.
    function finalizeExpired(uint64 placementId) external;

    /// @notice Fails a claim its device did not confirm Running within {claimDeadline} (Claimed -> Failed,
    /// code ClaimDeadlineMissed); frees its reservation and its replica and counts a failure against the
    /// device. Anyone: every worker is a keeper of its peers' claims.
    /// @dev Reverts PlacementRegistryClaimNotOverdue before `claimedAt + claimDeadline()`, and
    /// PlacementRegistryInvalidTransition when the placement is not Claimed.
    function finalizeOverdueClaim(uint64 placementId) external;

    /// @notice Sets the claim deadline (seconds, 1 s to 30 days). DEFAULT_ADMIN_ROLE (the timelock).
    /// @dev Applies to every open claim at once: lowering it can make claims overdue, so it is timelocked.
    function setClaimDeadline(uint40 newClaimDeadline) external;

    /// @notice Pauses claims. PAUSER_ROLE.
    function pause() external;

    /// @notice Resumes claims. PAUSER_ROLE.
    function unpause() external;

    /// @notice A placement (reverts if unknown).
    function placement(uint64 placementId) external view returns (Placement memory);

    /// @notice The state of a placement as read (None if unknown).
    function placementState(uint64 placementId) external view returns (PlacementState);

    /// @notice The transitions of a placement, oldest first.
    function placementHistory(uint64 placementId) external view returns (Transition[] memory);

    /// @notice A page of a deployment's placements, oldest first.
    function placementsOfDeployment(
        uint32 deploymentId,
        uint256 offset,
        uint256 limit
    ) external view returns (Placement[] memory);

    /// @notice A page of a device's placements, newest first.
    /// @dev Walks `offset` entries first (about 2,300 gas each): use {placementsOfDeviceFrom} for long
    /// histories.
    function placementsOfDevice(
        uint32 deviceId,
        uint256 offset,
        uint256 limit
    ) external view returns (Placement[] memory);

    /// @notice A page of a device's placements, newest first, from a cursor: O(limit) wherever the page is,
    /// so a whole history reads in O(n).
    /// @param cursor 0 for the newest placement, else the `next` returned with the previous page.
    /// @return page Up to `limit` placements, starting with `cursor`.
    /// @return next The cursor of the following page, or 0 when this page reached the oldest.
    function placementsOfDeviceFrom(
        uint32 deviceId,
        uint64 cursor,
        uint256 limit
    ) external view returns (Placement[] memory page, uint64 next);

    /// @notice A page of a deployment's placements, oldest first, from a cursor.
    /// @param cursor 0 for the first placement, else the `next` returned with the previous page.
    /// @return page Up to `limit` placements, starting with `cursor`.
    /// @return next The cursor of the following page, or 0 when this page reached the newest.
    function placementsOfDeploymentFrom(
        uint32 deploymentId,
        uint64 cursor,
        uint256 limit
    ) external view returns (Placement[] memory page, uint64 next);

    /// @notice A device's usage.
    function deviceUsage(uint32 deviceId) external view returns (DeviceUsage memory);

    /// @notice A deployment's usage; `liveReplicas` is 0 after a roll until the next claim.
    function deploymentUsage(uint32 deploymentId) external view returns (DeploymentUsage memory);

    /// @notice The placement of a deployment a device holds and has not closed, or 0.
    function activePlacementOf(uint32 deploymentId, uint32 deviceId) external view returns (uint64);

    /// @notice Seconds a claim may stay unconfirmed before anyone may finalize it as Failed.
    function claimDeadline() external view returns (uint40);

    /// @notice The AppRegistry read by claims.
    function appRegistry() external view returns (IAppRegistry);

    /// @notice The DeviceRegistry read by claims.
    function deviceRegistry() external view returns (IDeviceRegistry);
}
