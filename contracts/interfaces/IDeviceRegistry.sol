// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title IDeviceRegistry
/// @notice Staked device enrollment, heartbeats, unbonding exit, slashing and reputation.
/// @dev Device ids are sequential and start at 1. A device's owner stakes and exits; its operator (the
/// key its worker signs with) may do everything the worker needs: heartbeat, claim, confirm, fail, release.
interface IDeviceRegistry {
    /// @notice Where a device is in its life.
    /// @dev None: unknown id. Active: may claim. Exiting: unbonding, stake still slashable, no new claims.
    /// Exited: stake withdrawn.
    enum DeviceStatus {
        None,
        Active,
        Exiting,
        Exited
    }

    /// @notice Why stake was slashed.
    /// @dev Liveness: heartbeat older than the TTL while holding placements (anyone may trigger it, through
    /// the PlacementRegistry). Fault: a fault proven off chain, slashed by a SLASHER_ROLE with evidence.
    enum SlashKind {
        Liveness,
        Fault
    }

    /// @notice A placement outcome counted in a device's reputation.
    enum Outcome {
        Completed,
        Failed,
        Expired
    }

    /// @notice The registry's economic and timing parameters.
    /// @param minStake The least stake (token base units) to enroll and to claim.
    /// @param collateralPerPlacement Stake (token base units) each live placement locks on top of
    /// `minStake`: a claim needs `stake >= minStake + collateralPerPlacement * (livePlacements + 1)`, and a
    /// liveness slash takes it once per placement the device held.
    /// @param heartbeatTtl Seconds after its last heartbeat at which a device is stale.
    /// @param unbondingDelay Seconds between an exit request and the withdrawal; more than the TTL, so a
    /// device that stops heartbeating at its exit request is slashable before it can withdraw.
    /// @param livenessSlashBps The fraction of the stake a liveness fault costs, in basis points.
    /// @param bountyBps The keeper's share of a liveness slash, in basis points; the rest goes to the
    /// treasury.
    struct Parameters {
        uint80 minStake;
        uint80 collateralPerPlacement;
        uint32 heartbeatTtl;
        uint32 unbondingDelay;
        uint16 livenessSlashBps;
        uint16 bountyBps;
    }

    /// @notice A device as returned by {device}.
    /// @dev The endpoint is not stored (it is in {DeviceEnrolled} and {DeviceEndpointChanged}); labels are
    /// their keys (see Labels.key).
    struct Device {
        address owner;
        address operator;
        DeviceStatus status;
        uint96 stake;
        uint32 cpuMillicores;
        uint32 memoryMiB;
        uint40 lastHeartbeat;
        uint40 withdrawableAt;
        string platform;
        bytes8[] labels;
    }

    /// @notice A device's reputation counters.
    struct Reputation {
        uint32 completed;
        uint32 failed;
        uint32 expired;
    }

    /// @notice Everything a claim needs to know about a device, in one call.
    /// @dev `staked` is `stake >= minStake`; the claim adds the collateral of its placements.
    struct ClaimContext {
        address owner;
        address operator;
        DeviceStatus status;
        bool staked;
        bool fresh;
        uint96 stake;
        uint40 lastHeartbeat;
        uint32 cpuMillicores;
        uint32 memoryMiB;
        bytes32 platformKey;
        uint80 minStake;
        uint80 collateralPerPlacement;
    }

    // ---------------------------------------------------------------- errors

    /// @notice No device has this id.
    /// @param deviceId The id given.
    error DeviceRegistryUnknownDevice(uint32 deviceId);

    /// @notice The caller is neither the device's owner nor its operator.
    /// @param deviceId The device.
    /// @param account The caller.
    error DeviceRegistryUnauthorizedAccount(uint32 deviceId, address account);

    /// @notice The caller is not the device's owner.
    /// @param deviceId The device.
    /// @param account The caller.
    error DeviceRegistryNotDeviceOwner(uint32 deviceId, address account);

    /// @notice The stake offered is below the minimum.
    /// @param amount The amount offered.
    /// @param minStake The minimum.
    error DeviceRegistryInsufficientStake(uint256 amount, uint256 minStake);

    /// @notice A stake would exceed 2^96 - 1 base units, the most one device may hold.
    /// @param stake The stake it would have.
    error DeviceRegistryStakeTooLarge(uint256 stake);

    /// @notice The operator is the zero address.
    error DeviceRegistryInvalidOperator(address operator);

    /// @notice The platform is malformed (3 to 31 bytes with a `/`, e.g. `linux/arm64`).
    error DeviceRegistryInvalidPlatform(string platform);

    /// @notice The capacity is zero.
    error DeviceRegistryInvalidCapacity(uint32 cpuMillicores, uint32 memoryMiB);

    /// @notice The endpoint is empty or longer than 256 bytes.
    error DeviceRegistryInvalidEndpoint(string endpoint);

    /// @notice The device is not active (it is exiting or has exited).
    /// @param deviceId The device.
    /// @param status Its status.
    error DeviceRegistryNotActive(uint32 deviceId, DeviceStatus status);

    /// @notice The device is not exiting, so there is no exit to complete.
    /// @param deviceId The device.
    /// @param status Its status.
    error DeviceRegistryNotExiting(uint32 deviceId, DeviceStatus status);

    /// @notice The unbonding delay has not passed.
    /// @param deviceId The device.
    /// @param withdrawableAt When the stake may be withdrawn (unix seconds).
    error DeviceRegistryUnbonding(uint32 deviceId, uint40 withdrawableAt);

    /// @notice An amount is zero.
    error DeviceRegistryZeroAmount();

    /// @notice The device has no stake left to slash.
    error DeviceRegistryNothingToSlash(uint32 deviceId);

    /// @notice A fault slash needs the CID of its evidence.
    error DeviceRegistryMissingEvidence(uint32 deviceId);

    /// @notice The treasury is the zero address.
    error DeviceRegistryInvalidTreasury(address treasury);

    /// @notice The parameters are out of range: minStake > 0, heartbeatTtl > 0,
    /// unbondingDelay > heartbeatTtl, livenessSlashBps <= 10000, bountyBps <= 10000.
    error DeviceRegistryInvalidParameters(Parameters parameters);

    /// @notice An exit cannot start while the device holds live placements: release them first (or let
    /// them be expired), so that no replica is left on a device that is leaving with its stake.
    /// @param deviceId The device.
    /// @param livePlacements How many it holds.
    error DeviceRegistryLivePlacements(uint32 deviceId, uint32 livePlacements);

    /// @notice An exit completes only once the device is stale under the current TTL, so that any
    /// liveness fault could have been slashed first.
    /// @param deviceId The device.
    /// @param lastHeartbeat Its last heartbeat (unix seconds); it is stale after lastHeartbeat + TTL.
    error DeviceRegistryExitWhileFresh(uint32 deviceId, uint40 lastHeartbeat);

    /// @notice Only the account that deployed the registry may link the PlacementRegistry, once.
    /// @param account The caller.
    error DeviceRegistryNotDeployer(address account);

    /// @notice The PlacementRegistry is already linked, or the address given is zero.
    /// @param placementRegistry The registry already linked, or zero.
    error DeviceRegistryInvalidPlacementRegistry(address placementRegistry);

    // ---------------------------------------------------------------- events

    /// @notice A device enrolled with a stake.
    /// @param deviceId The new device's id.
    /// @param owner Its owner (the caller), who staked.
    /// @param operator The key its worker signs with.
    /// @param platform Its platform, e.g. `linux/arm64`.
    /// @param cpuMillicores Its CPU capacity.
    /// @param memoryMiB Its memory capacity.
    /// @param labels Its labels, as text.
    /// @param endpoint Its IPFS peer address (multiaddr).
    /// @param stake The stake deposited.
    event DeviceEnrolled(
        uint32 indexed deviceId,
        address indexed owner,
        address indexed operator,
        string platform,
        uint32 cpuMillicores,
        uint32 memoryMiB,
        string[] labels,
        string endpoint,
        uint256 stake
    );

    /// @notice A device sent its heartbeat; the block time is the heartbeat time.
    /// @param deviceId The device.
    event DeviceHeartbeat(uint32 indexed deviceId);

    /// @notice A device's operator key changed.
    /// @param deviceId The device.
    /// @param previousOperator The key before.
    /// @param newOperator The key now.
    event DeviceOperatorChanged(
        uint32 indexed deviceId,
        address indexed previousOperator,
        address indexed newOperator
    );

    /// @notice A device's IPFS peer address changed.
    /// @param deviceId The device.
    /// @param endpoint The new address.
    event DeviceEndpointChanged(uint32 indexed deviceId, string endpoint);

    /// @notice Stake was added to a device.
    /// @param deviceId The device.
    /// @param from Who paid.
    /// @param amount The amount added.
    /// @param stake The device's stake now.
    event DeviceStakeIncreased(uint32 indexed deviceId, address indexed from, uint256 amount, uint256 stake);

    /// @notice A device asked to exit; its stake unbonds and stays slashable until `withdrawableAt`.
    /// @param deviceId The device.
    /// @param withdrawableAt When the stake may be withdrawn (unix seconds).
    /// @param stake The stake unbonding.
    event DeviceExitRequested(uint32 indexed deviceId, uint40 withdrawableAt, uint256 stake);

    /// @notice A device's exit completed and its remaining stake went back to its owner.
    /// @param deviceId The device.
    /// @param owner The owner paid.
    /// @param amount The amount withdrawn.
    event DeviceExited(uint32 indexed deviceId, address indexed owner, uint256 amount);

    /// @notice Stake was slashed.
    /// @param deviceId The device.
    /// @param slasher Who slashed: the PlacementRegistry for liveness, a SLASHER_ROLE account for faults.
    /// @param kind Liveness or Fault.
    /// @param amount The amount taken from the stake.
    /// @param bounty The part of `amount` paid to `bountyRecipient` (liveness only).
    /// @param bountyRecipient Who received the bounty (the caller of the expiry), or zero.
    /// @param stake The device's stake left.
    /// @param evidenceCid The CID of the evidence (faults), or "".
    event DeviceSlashed(
        uint32 indexed deviceId,
        address indexed slasher,
        SlashKind indexed kind,
        uint256 amount,
        uint256 bounty,
        address bountyRecipient,
        uint256 stake,
        string evidenceCid
    );

    /// @notice The parameters changed.
    /// @param parameters The new parameters.
    event ParametersChanged(Parameters parameters);

    /// @notice The PlacementRegistry whose live placements block an exit was linked.
    /// @param placementRegistry Its address.
    event PlacementRegistrySet(address indexed placementRegistry);

    /// @notice The treasury (which receives slashed stake less bounties) changed.
    /// @param treasury The new treasury.
    event TreasuryChanged(address indexed treasury);

    // ---------------------------------------------------------------- functions

    /// @notice Enrolls a device owned by the caller and pulls `stake` tokens from the caller.
    /// @dev Needs a token allowance of `stake`. Pausable.
    /// @param operator The worker's signing key.
    /// @param platform e.g. `linux/amd64`.
    /// @param cpuMillicores CPU capacity, > 0.
    /// @param memoryMiB Memory capacity, > 0.
    /// @param labels At most 8 distinct `key=value` labels.
    /// @param endpoint The device's IPFS peer address, 1 to 256 bytes.
    /// @param stake At least the minimum stake.
    /// @return deviceId The new device's id.
    function enroll(
        address operator,
        string calldata platform,
        uint32 cpuMillicores,
        uint32 memoryMiB,
        string[] calldata labels,
        string calldata endpoint,
        uint256 stake
    ) external returns (uint32 deviceId);

    /// @notice Records a heartbeat. Owner or operator; active or exiting devices.
    /// @param deviceId The device.
    function heartbeat(uint32 deviceId) external;

    /// @notice Changes the operator key. Owner only.
    function setOperator(uint32 deviceId, address operator) external;

    /// @notice Changes the IPFS peer address. Owner or operator.
    function setEndpoint(uint32 deviceId, string calldata endpoint) external;

    /// @notice Adds stake to an active device, pulled from the caller (owner only).
    function topUp(uint32 deviceId, uint256 amount) external;

    /// @notice Starts the exit: the device takes no new claims and its stake unbonds. Owner only; refused
    /// while the device holds live placements (DeviceRegistryLivePlacements).
    function requestExit(uint32 deviceId) external;

    /// @notice Completes the exit after the unbonding delay and pays the remaining stake to the owner.
    /// @dev Also needs the device stale under the current TTL (DeviceRegistryExitWhileFresh).
    function completeExit(uint32 deviceId) external;

    /// @notice Links the PlacementRegistry whose live placements block an exit. The deployer, once.
    function setPlacementRegistry(address placementRegistry_) external;

    /// @notice Slashes a fault proven off chain. SLASHER_ROLE; slashable while active or exiting.
    /// @dev The amount is capped at the stake; the slashed tokens go to the treasury.
    /// @param deviceId The device.
    /// @param amount The amount to take (capped at the stake).
    /// @param evidenceCid The CID of the evidence.
    /// @return slashed The amount taken.
    function slash(
        uint32 deviceId,
        uint256 amount,
        string calldata evidenceCid
    ) external returns (uint256 slashed);

    /// @notice Slashes a liveness fault and pays the bounty. PLACEMENT_ROLE (the PlacementRegistry's expiry).
    /// @param deviceId The device.
    /// @param bountyRecipient Who triggered the expiry, or zero when no bounty is due (the device's own
    /// owner or operator expired it): then all of the slash goes to the treasury.
    /// @param expiredPlacements How many placements expired (added to the reputation counter).
    /// @return slashed The amount taken:
    /// `min(stake, stake * livenessSlashBps / 10000 + collateralPerPlacement * expiredPlacements)`.
    /// @return bounty The recipient's share (`slashed * bountyBps / 10000`).
    function slashLiveness(
        uint32 deviceId,
        address bountyRecipient,
        uint32 expiredPlacements
    ) external returns (uint256 slashed, uint256 bounty);

    /// @notice Counts a placement outcome in the device's reputation. PLACEMENT_ROLE.
    function recordOutcome(uint32 deviceId, Outcome outcome) external;

    /// @notice Sets the parameters. DEFAULT_ADMIN_ROLE.
    function setParameters(Parameters calldata newParameters) external;

    /// @notice Sets the treasury. DEFAULT_ADMIN_ROLE.
    function setTreasury(address newTreasury) external;

    /// @notice Pauses enrollment. PAUSER_ROLE.
    function pause() external;

    /// @notice Resumes enrollment. PAUSER_ROLE.
    function unpause() external;

    /// @notice A device.
    function device(uint32 deviceId) external view returns (Device memory);

    /// @notice A device's reputation counters.
    function reputation(uint32 deviceId) external view returns (Reputation memory);

    /// @notice What a claim needs to know about a device (reverts for an unknown device).
    function claimContext(uint32 deviceId) external view returns (ClaimContext memory);

    /// @notice The first of `required` the device does not offer, or zero when it offers all.
    function missingLabel(uint32 deviceId, bytes8[] calldata required) external view returns (bytes8);

    /// @notice Whether `account` is the device's owner or operator.
    function isAuthorized(uint32 deviceId, address account) external view returns (bool);

    /// @notice Whether the device's last heartbeat is older than the TTL.
    function isStale(uint32 deviceId) external view returns (bool);

    /// @notice The linked PlacementRegistry (zero until linked).
    function placementRegistry() external view returns (address);

    /// @notice The parameters.
    function parameters() external view returns (Parameters memory);

    /// @notice The staking token.
    function token() external view returns (address);

    /// @notice Where slashed stake (less bounties) goes.
    function treasury() external view returns (address);

    /// @notice The number of devices enrolled so far.
    function deviceCount() external view returns (uint32);

    /// @notice The sum of all stakes held (active and unbonding); equals the registry's token balance.
    function totalStaked() external view returns (uint256);
}
