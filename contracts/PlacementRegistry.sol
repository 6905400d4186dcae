// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {IAppRegistry} from "./interfaces/IAppRegistry.sol";
import {IDeploymentObserver} from "./interfaces/IDeploymentObserver.sol";
import {IDeviceRegistry} from "./interfaces/IDeviceRegistry.sol";
import {IPlacementRegistry} from "./interfaces/IPlacementRegistry.sol";

/// @title PlacementRegistry
/// @notice Devices claim replicas of deployments; the registry keeps O(1) accounts of each device's
/// reserved CPU and memory and of each deployment's live replicas, and the full history of every
/// placement.
/// @dev Every state-changing call is O(1) in the number of apps, devices, deployments and placements:
/// - expiring a stale device bumps its generation instead of visiting its placements; placements of an
///   older device generation read as Expired and are finalized one by one ({finalizeExpired}, or by the
///   next claim of the same deployment on the same device);
/// - rolling or stopping a deployment bumps its generation in the AppRegistry; this registry resets the
///   deployment's live count lazily, when it next sees the new generation;
/// - a device's placements form a linked list through `previousOfDevice`, so no array grows per device.
contract PlacementRegistry is IPlacementRegistry, AccessControl, Pausable, ReentrancyGuardTransient {
    /// @notice May pause and resume claims.
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");
    /// @notice The longest claim deadline, in seconds (30 days).
    uint40 public constant MAX_CLAIM_DEADLINE = 30 days;

    /// @dev The recorded phase. Claimed is 0 so that a claim writes one slot and a confirm the second.
    enum Phase {
        Claimed,
        Running,
        Released,
        Failed,
        Expired
    }

    /// @dev Slot 1 is written once, by the claim; slot 2 by the confirm and by the end. The phase is in
    /// slot 2: Claimed is 0, so the claim leaves it alone and the confirm writes one slot only.
    struct PlacementRecord {
        uint32 deviceId;
        uint32 deviceGeneration;
        uint32 deploymentGeneration;
        uint40 claimedAt;
        uint40 claimedBlock;
        uint64 previousOfDevice;
        uint40 runningAt;
        uint40 runningBlock;
        uint40 endedAt;
        uint40 endedBlock;
        Phase phase;
        uint8 code;
    }

    /// @dev When a device generation ended by expiry.
    struct Expiry {
        uint40 at;
        uint40 blockNumber;
    }

    IAppRegistry private immutable _apps;
    IDeviceRegistry private immutable _devices;
    mapping(uint64 placementId => PlacementRecord record) private _placements;
    mapping(uint32 deviceId => DeviceUsage usage) private _deviceUsage;
    mapping(uint32 deploymentId => DeploymentUsage usage) private _deploymentUsage;
    mapping(uint32 deploymentId => mapping(uint32 deviceId => uint64 placementId)) private _active;
    mapping(uint32 deviceId => mapping(uint32 generation => Expiry expiry)) private _expiries;
    uint40 private _claimDeadline;

    /// @param apps The AppRegistry.
    /// @param devices The DeviceRegistry; grant this contract its PLACEMENT_ROLE.
    /// @param admin Holds DEFAULT_ADMIN_ROLE and PAUSER_ROLE.
    /// @param claimDeadline_ Seconds a claim may stay unconfirmed (see {claimDeadline}).
    constructor(IAppRegistry apps, IDeviceRegistry devices, address admin, uint40 claimDeadline_) {
        _apps = apps;
        _devices = devices;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(PAUSER_ROLE, admin);
        _setClaimDeadline(claimDeadline_);
    }

    // ---------------------------------------------------------------- transitions

    /// @inheritdoc IPlacementRegistry
    function claim(uint32 deploymentId, uint32 deviceId) external whenNotPaused returns (uint64 placementId) {
        IDeviceRegistry.ClaimContext memory c = _checkDevice(deviceId);
        IAppRegistry.ClaimTerms memory t = _checkTerms(deploymentId, deviceId, c.platformKey);
        uint32 deviceGeneration;
        bool replacedRunning;
        (placementId, deviceGeneration, replacedRunning) = _place(deploymentId, deviceId, c, t);
        emit PlacementClaimed(
            placementId,
            deploymentId,
            deviceId,
            t.appId,
            t.version,
            t.generation,
            deviceGeneration,
            t.band
        );

        if (replacedRunning) _devices.recordOutcome(deviceId, IDeviceRegistry.Outcome.Completed);
    }

    /// @inheritdoc IPlacementRegistry
    function confirm(uint64 placementId) external {
        (PlacementRecord storage p, uint32 deviceId) = _livePlacement(placementId);
        _checkDeviceCaller(deviceId);
        if (p.phase != Phase.Claimed)
            revert PlacementRegistryInvalidTransition(placementId, _recorded(p.phase));
        uint32 deploymentId = _deploymentOf(placementId);
        // The AppRegistry reports every roll and stop, so this generation is the deployment's own.
        DeploymentUsage storage du = _deploymentUsage[deploymentId];
        uint32 generation = du.generation;
        if (p.deploymentGeneration != generation)
            revert PlacementRegistryPlacementSuperseded(placementId, p.deploymentGeneration, generation);
        p.phase = Phase.Running;
        p.runningAt = uint40(block.timestamp);
        p.runningBlock = uint40(block.number);
        du.runningReplicas += 1;
        emit PlacementConfirmed(placementId, deploymentId, deviceId);
    }

    /// @inheritdoc IPlacementRegistry
    function fail(uint64 placementId, FailureCode code) external {
        if (code == FailureCode.None || code == FailureCode.ClaimDeadlineMissed)
            revert PlacementRegistryInvalidFailureCode(code);
        (PlacementRecord storage p, uint32 deviceId) = _livePlacement(placementId);
        _checkDeviceCaller(deviceId);
        uint32 deploymentId = _deploymentOf(placementId);
        PlacementState previous = _recorded(p.phase);
        _endLive(placementId, p, deploymentId, deviceId, Phase.Failed, uint8(code));
        emit PlacementFailed(placementId, deploymentId, deviceId, code, previous);

        _devices.recordOutcome(deviceId, IDeviceRegistry.Outcome.Failed);
    }

    /// @inheritdoc IPlacementRegistry
    function release(uint64 placementId) external {
        (PlacementRecord storage p, uint32 deviceId) = _livePlacement(placementId);
        uint32 deploymentId = _deploymentOf(placementId);
        IAppRegistry.DeploymentSummary memory s = _apps.deploymentSummary(deploymentId);
        ReleaseReason reason;
        if (p.deploymentGeneration != s.generation) {
            if (s.active) {
                reason = ReleaseReason.Superseded;
                // Make-before-break: a stranger may stop an old replica only once the new generation runs
                // in full (or the device is dead anyway), never mid-roll.
                if (msg.sender != s.owner && !_devices.isAuthorized(deviceId, msg.sender))
                    _checkRollDone(placementId, deploymentId, deviceId, s);
            } else {
                reason = ReleaseReason.DeploymentStopped;
            }
        } else {
            bool byDevice = _devices.isAuthorized(deviceId, msg.sender);
            if (!byDevice && msg.sender != s.owner)
                revert PlacementRegistryUnauthorizedAccount(deviceId, msg.sender);
            // The deployment's usage is of generation `s.generation`: the claim of `p` synced it.
            if (_deploymentUsage[deploymentId].liveReplicas > s.replicas) reason = ReleaseReason.ScaleDown;
            else reason = byDevice ? ReleaseReason.ByDevice : ReleaseReason.ByAppOwner;
        }
        PlacementState previous = _recorded(p.phase);
        _endLive(placementId, p, deploymentId, deviceId, Phase.Released, uint8(reason));
        emit PlacementReleased(placementId, deploymentId, deviceId, reason, msg.sender, previous);

        if (previous == PlacementState.Running)
            _devices.recordOutcome(deviceId, IDeviceRegistry.Outcome.Completed);
    }

    /// @inheritdoc IPlacementRegistry
    function expireDevice(uint32 deviceId) external nonReentrant returns (uint256 slashed, uint256 bounty) {
        DeviceUsage storage vu = _deviceUsage[deviceId];
        uint32 live = vu.livePlacements;
        if (live == 0) revert PlacementRegistryNoLivePlacements(deviceId);
        IDeviceRegistry.ClaimContext memory c = _devices.claimContext(deviceId);
        if (c.fresh) revert PlacementRegistryDeviceFresh(deviceId, c.lastHeartbeat);

        uint32 generation = vu.generation;
        _expiries[deviceId][generation] = Expiry({
            at: uint40(block.timestamp),
            blockNumber: uint40(block.number)
        });
        vu.generation = generation + 1;
        vu.cpuReservedMillicores = 0;
        vu.memoryReservedMiB = 0;
        vu.livePlacements = 0;
        emit DeviceExpired(deviceId, msg.sender, generation, live);

        // No bounty for expiring one's own device: the slash would otherwise partly flow back to it.
        address recipient = msg.sender == c.owner || msg.sender == c.operator ? address(0) : msg.sender;
        (slashed, bounty) = _devices.slashLiveness(deviceId, recipient, live);
    }

    /// @inheritdoc IPlacementRegistry
    function finalizeExpired(uint64 placementId) external {
        PlacementRecord storage p = _existingPlacement(placementId);
        if (uint8(p.phase) > uint8(Phase.Running)) {
            revert PlacementRegistryInvalidTransition(placementId, _recorded(p.phase));
        }
        uint32 deviceId = p.deviceId;
        if (p.deviceGeneration == _deviceUsage[deviceId].generation)
            revert PlacementRegistryNotExpired(placementId);
        _finalizeExpired(placementId, p, _deploymentOf(placementId), deviceId);
    }

    /// @inheritdoc IPlacementRegistry
    function finalizeOverdueClaim(uint64 placementId) external {
        (PlacementRecord storage p, uint32 deviceId) = _livePlacement(placementId);
        if (p.phase != Phase.Claimed)
            revert PlacementRegistryInvalidTransition(placementId, _recorded(p.phase));
        uint40 deadline = p.claimedAt + _claimDeadline;
        if (block.timestamp < deadline) revert PlacementRegistryClaimNotOverdue(placementId, deadline);
        uint32 deploymentId = _deploymentOf(placementId);
        _endLive(
            placementId,
            p,
            deploymentId,
            deviceId,
            Phase.Failed,
            uint8(FailureCode.ClaimDeadlineMissed)
        );
        emit PlacementFailed(
            placementId,
            deploymentId,
            deviceId,
            FailureCode.ClaimDeadlineMissed,
            PlacementState.Claimed
        );

        _devices.recordOutcome(deviceId, IDeviceRegistry.Outcome.Failed);
    }

    /// @inheritdoc IPlacementRegistry
    function setClaimDeadline(uint40 newClaimDeadline) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setClaimDeadline(newClaimDeadline);
    }

    /// @inheritdoc IDeploymentObserver
    /// @dev Makes the deployment's usage slot non-zero now, so that its first claim costs what every
    /// other claim costs (a zero-to-non-zero write is 17,100 gas more).
    function onDeploymentCreated(uint32 deploymentId) external {
        if (msg.sender != address(_apps)) revert PlacementRegistryNotAppRegistry(msg.sender);
        _deploymentUsage[deploymentId].generation = 1;
    }

    /// @inheritdoc IDeploymentObserver
    /// @dev The live and running counts restart for the new generation; placements of older generations
    /// read as Superseded and no longer count.
    function onDeploymentGenerationChanged(uint32 deploymentId, uint32 generation) external {
        if (msg.sender != address(_apps)) revert PlacementRegistryNotAppRegistry(msg.sender);
        DeploymentUsage storage du = _deploymentUsage[deploymentId];
        du.generation = generation;
        du.liveReplicas = 0;
        du.runningReplicas = 0;
    }

    /// @inheritdoc IPlacementRegistry
    function pause() external onlyRole(PAUSER_ROLE) {
        _pause();
    }

    /// @inheritdoc IPlacementRegistry
    function unpause() external onlyRole(PAUSER_ROLE) {
        _unpause();
    }

    // ---------------------------------------------------------------- views

    /// @inheritdoc IPlacementRegistry
    function placement(uint64 placementId) external view returns (Placement memory) {
        _existingPlacement(placementId);
        return _view(placementId, _apps.deploymentSummary(_deploymentOf(placementId)));
    }

    /// @inheritdoc IPlacementRegistry
    function placementState(uint64 placementId) external view returns (PlacementState) {
        PlacementRecord storage p = _placements[placementId];
        if (p.deviceId == 0) return PlacementState.None;
        return _state(p, _apps.deploymentSummary(_deploymentOf(placementId)).generation);
    }

    /// @inheritdoc IPlacementRegistry
    function placementHistory(uint64 placementId) external view returns (Transition[] memory history) {
        PlacementRecord storage p = _existingPlacement(placementId);
        Transition[3] memory all;
        uint256 n = 0;
        all[n++] = Transition(PlacementState.Claimed, 0, p.claimedAt, p.claimedBlock);
        if (p.runningBlock != 0)
            all[n++] = Transition(PlacementState.Running, 0, p.runningAt, p.runningBlock);
        if (uint8(p.phase) > uint8(Phase.Running)) {
            all[n++] = Transition(_recorded(p.phase), p.code, p.endedAt, p.endedBlock);
        } else if (p.deviceGeneration != _deviceUsage[p.deviceId].generation) {
            Expiry memory e = _expiries[p.deviceId][p.deviceGeneration];
            all[n++] = Transition(PlacementState.Expired, 0, e.at, e.blockNumber);
        }
        history = new Transition[](n);
        for (uint256 i; i < n; ++i) {
            history[i] = all[i];
        }
    }

    /// @inheritdoc IPlacementRegistry
    function placementsOfDeployment(
        uint32 deploymentId,
        uint256 offset,
        uint256 limit
    ) external view returns (Placement[] memory page) {
        uint256 total = _deploymentUsage[deploymentId].placementCount;
        if (offset >= total) return new Placement[](0);
        uint256 n = total - offset < limit ? total - offset : limit;
        page = new Placement[](n);
        IAppRegistry.DeploymentSummary memory s = _apps.deploymentSummary(deploymentId);
        for (uint256 i; i < n; ++i) {
            page[i] = _view((uint64(deploymentId) << 32) | uint64(offset + i + 1), s);
        }
    }

    /// @inheritdoc IPlacementRegistry
    function placementsOfDevice(
        uint32 deviceId,
        uint256 offset,
        uint256 limit
    ) external view returns (Placement[] memory page) {
        DeviceUsage storage vu = _deviceUsage[deviceId];
        uint256 total = vu.placementCount;
        if (offset >= total) return new Placement[](0);
        uint256 n = total - offset < limit ? total - offset : limit;
        page = new Placement[](n);
        uint64 id = vu.lastPlacementId;
        for (uint256 i; i < offset; ++i) {
            id = _placements[id].previousOfDevice;
        }
        for (uint256 i; i < n; ++i) {
            page[i] = _view(id, _apps.deploymentSummary(_deploymentOf(id)));
            id = _placements[id].previousOfDevice;
        }
    }

    /// @inheritdoc IPlacementRegistry
    function placementsOfDeviceFrom(
        uint32 deviceId,
        uint64 cursor,
        uint256 limit
    ) external view returns (Placement[] memory page, uint64 next) {
        if (cursor == 0) cursor = _deviceUsage[deviceId].lastPlacementId;
        else if (_placements[cursor].deviceId != deviceId || deviceId == 0)
            revert PlacementRegistryInvalidCursor(cursor);
        // Two walks, the second over warm slots: the first sizes the page.
        uint256 n = 0;
        for (uint64 id = cursor; id != 0 && n < limit; id = _placements[id].previousOfDevice) ++n;
        page = new Placement[](n);
        next = cursor;
        for (uint256 i; i < n; ++i) {
            page[i] = _view(next, _apps.deploymentSummary(_deploymentOf(next)));
            next = _placements[next].previousOfDevice;
        }
    }

    /// @inheritdoc IPlacementRegistry
    function placementsOfDeploymentFrom(
        uint32 deploymentId,
        uint64 cursor,
        uint256 limit
    ) external view returns (Placement[] memory page, uint64 next) {
        uint256 total = _deploymentUsage[deploymentId].placementCount;
        uint256 first = 1;
        if (cursor != 0) {
            first = uint32(cursor);
            if (_deploymentOf(cursor) != deploymentId || first == 0 || first > total)
                revert PlacementRegistryInvalidCursor(cursor);
        }
        if (first > total) return (new Placement[](0), 0);
        uint256 n = total - first + 1 < limit ? total - first + 1 : limit;
        page = new Placement[](n);
        IAppRegistry.DeploymentSummary memory s = _apps.deploymentSummary(deploymentId);
        uint64 base = uint64(deploymentId) << 32;
        for (uint256 i; i < n; ++i) {
            page[i] = _view(base | uint64(first + i), s);
        }
        if (first + n <= total) next = base | uint64(first + n);
    }

    /// @inheritdoc IPlacementRegistry
    function deviceUsage(uint32 deviceId) external view returns (DeviceUsage memory) {
        return _deviceUsage[deviceId];
    }

    /// @inheritdoc IPlacementRegistry
    function deploymentUsage(uint32 deploymentId) external view returns (DeploymentUsage memory u) {
        u = _deploymentUsage[deploymentId];
        uint32 generation = _apps.deploymentSummary(deploymentId).generation;
        if (u.generation != generation) {
            u.generation = generation;
            u.liveReplicas = 0;
            u.runningReplicas = 0;
        }
    }

    /// @inheritdoc IPlacementRegistry
    function activePlacementOf(uint32 deploymentId, uint32 deviceId) external view returns (uint64) {
        return _active[deploymentId][deviceId];
    }

    /// @inheritdoc IPlacementRegistry
    function claimDeadline() external view returns (uint40) {
        return _claimDeadline;
    }

    /// @inheritdoc IPlacementRegistry
    function appRegistry() external view returns (IAppRegistry) {
        return _apps;
    }

    /// @inheritdoc IPlacementRegistry
    function deviceRegistry() external view returns (IDeviceRegistry) {
        return _devices;
    }

    // ---------------------------------------------------------------- claim internals

    function _checkDevice(uint32 deviceId) private view returns (IDeviceRegistry.ClaimContext memory c) {
        c = _devices.claimContext(deviceId);
        if (msg.sender != c.operator && msg.sender != c.owner) {
            revert PlacementRegistryUnauthorizedAccount(deviceId, msg.sender);
        }
        if (c.status != IDeviceRegistry.DeviceStatus.Active)
            revert PlacementRegistryDeviceNotActive(deviceId, c.status);
        if (!c.staked) revert PlacementRegistryDeviceUnderstaked(deviceId, c.stake);
        if (!c.fresh) revert PlacementRegistryDeviceStale(deviceId, c.lastHeartbeat);
    }

    function _checkTerms(
        uint32 deploymentId,
        uint32 deviceId,
        bytes32 platformKey
    ) private view returns (IAppRegistry.ClaimTerms memory t) {
        t = _apps.claimTerms(deploymentId, platformKey);
        if (!t.active) revert PlacementRegistryDeploymentNotActive(deploymentId);
        if (t.deprecated) revert PlacementRegistryVersionDeprecated(deploymentId, t.appId, t.version);
        if (!t.platformSupported) {
            revert PlacementRegistryPlatformUnsupported(deploymentId, deviceId, platformKey);
        }
        if (t.requiredLabels.length != 0) {
            bytes8 missing = _devices.missingLabel(deviceId, t.requiredLabels);
            if (missing != bytes8(0)) revert PlacementRegistryLabelMissing(deploymentId, deviceId, missing);
        }
    }

    /// @dev The effects of a claim, after the checks that need no state of this registry.
    function _place(
        uint32 deploymentId,
        uint32 deviceId,
        IDeviceRegistry.ClaimContext memory c,
        IAppRegistry.ClaimTerms memory t
    ) private returns (uint64 placementId, uint32 deviceGeneration, bool replacedRunning) {
        (placementId, replacedRunning) = _takeReplica(deploymentId, deviceId, t);
        DeviceUsage storage vu = _deviceUsage[deviceId];
        _checkCollateral(deviceId, vu.livePlacements, c);
        _checkFits(deviceId, vu, c, t.band);
        deviceGeneration = vu.generation;
        // Field by field: a whole-struct assignment would also write the second slot (zeros), in vain.
        PlacementRecord storage p = _placements[placementId];
        p.deviceId = deviceId;
        p.deviceGeneration = deviceGeneration;
        p.deploymentGeneration = t.generation;
        p.claimedAt = uint40(block.timestamp);
        p.claimedBlock = uint40(block.number);
        p.previousOfDevice = vu.lastPlacementId;
        vu.cpuReservedMillicores += t.band.cpuMinMillicores;
        vu.memoryReservedMiB += t.band.memoryMinMiB;
        vu.livePlacements += 1;
        vu.placementCount += 1;
        vu.lastPlacementId = placementId;
        _active[deploymentId][deviceId] = placementId;
    }

    /// @dev Counts one more live replica of the deployment and returns the new placement's id, and whether
    /// a superseded Running placement was replaced (its completion is counted once all effects are done).
    function _takeReplica(
        uint32 deploymentId,
        uint32 deviceId,
        IAppRegistry.ClaimTerms memory t
    ) private returns (uint64 placementId, bool replacedRunning) {
        DeploymentUsage storage du = _deploymentUsage[deploymentId];
        // A roll or stop since the last claim: the live count restarts for the new generation.
        if (du.generation != t.generation) {
            du.generation = t.generation;
            du.liveReplicas = 0;
            du.runningReplicas = 0;
        }
        uint64 existing = _active[deploymentId][deviceId];
        if (existing != 0)
            replacedRunning = _closeBeforeReclaim(existing, deploymentId, deviceId, t.generation);
        uint32 live = du.liveReplicas;
        if (live >= t.replicas) revert PlacementRegistryReplicasExhausted(deploymentId, t.replicas, live);
        uint32 n = du.placementCount + 1;
        du.placementCount = n;
        du.liveReplicas = live + 1;
        placementId = (uint64(deploymentId) << 32) | n;
    }

    function _checkCollateral(
        uint32 deviceId,
        uint32 livePlacements,
        IDeviceRegistry.ClaimContext memory c
    ) private pure {
        uint256 required =
            uint256(c.minStake) + uint256(c.collateralPerPlacement) * (uint256(livePlacements) + 1);
        if (c.stake < required) revert PlacementRegistryInsufficientCollateral(deviceId, c.stake, required);
    }

    function _checkFits(
        uint32 deviceId,
        DeviceUsage storage vu,
        IDeviceRegistry.ClaimContext memory c,
        IAppRegistry.ResourceBand memory band
    ) private view {
        uint32 reserved = vu.cpuReservedMillicores;
        if (uint256(reserved) + band.cpuMinMillicores > c.cpuMillicores) {
            revert PlacementRegistryCpuCapacityExceeded(
                deviceId,
                band.cpuMinMillicores,
                c.cpuMillicores - reserved
            );
        }
        reserved = vu.memoryReservedMiB;
        if (uint256(reserved) + band.memoryMinMiB > c.memoryMiB) {
            revert PlacementRegistryMemoryCapacityExceeded(
                deviceId,
                band.memoryMinMiB,
                c.memoryMiB - reserved
            );
        }
    }

    /// @dev The device still has a placement of this deployment open: close it if it expired or was
    /// superseded (the new claim replaces it), otherwise the device already holds a live replica.
    function _closeBeforeReclaim(
        uint64 existing,
        uint32 deploymentId,
        uint32 deviceId,
        uint32 generation
    ) private returns (bool replacedRunning) {
        PlacementRecord storage p = _placements[existing];
        if (p.deviceGeneration != _deviceUsage[deviceId].generation) {
            _finalizeExpired(existing, p, deploymentId, deviceId);
        } else if (p.deploymentGeneration != generation) {
            PlacementState previous = _recorded(p.phase);
            _endLive(existing, p, deploymentId, deviceId, Phase.Released, uint8(ReleaseReason.Superseded));
            emit PlacementReleased(
                existing,
                deploymentId,
                deviceId,
                ReleaseReason.Superseded,
                msg.sender,
                previous
            );
            replacedRunning = previous == PlacementState.Running;
        } else {
            revert PlacementRegistryAlreadyPlaced(deploymentId, deviceId, existing);
        }
    }

    // ---------------------------------------------------------------- shared internals

    function _setClaimDeadline(uint40 newClaimDeadline) private {
        if (newClaimDeadline == 0 || newClaimDeadline > MAX_CLAIM_DEADLINE)
            revert PlacementRegistryInvalidClaimDeadline(newClaimDeadline);
        _claimDeadline = newClaimDeadline;
        emit ClaimDeadlineChanged(newClaimDeadline);
    }

    /// @dev Ends a placement of the device's current generation: frees its reservation on the device and,
    /// if it is of the deployment's counted generation, its replica.
    function _endLive(
        uint64 placementId,
        PlacementRecord storage p,
        uint32 deploymentId,
        uint32 deviceId,
        Phase phase,
        uint8 code
    ) private {
        IAppRegistry.ResourceBand memory band = _apps.bandAt(deploymentId, p.deploymentGeneration);
        bool wasRunning = p.phase == Phase.Running;
        _recordEnd(p, phase, code, uint40(block.timestamp), uint40(block.number));
        DeviceUsage storage vu = _deviceUsage[deviceId];
        vu.cpuReservedMillicores -= band.cpuMinMillicores;
        vu.memoryReservedMiB -= band.memoryMinMiB;
        vu.livePlacements -= 1;
        _freeReplica(placementId, p, deploymentId, deviceId, wasRunning);
    }

    function _finalizeExpired(
        uint64 placementId,
        PlacementRecord storage p,
        uint32 deploymentId,
        uint32 deviceId
    ) private {
        PlacementState previous = _recorded(p.phase);
        uint32 generation = p.deviceGeneration;
        Expiry memory e = _expiries[deviceId][generation];
        // The transition happened when the device was expired; this call only records it.
        _recordEnd(p, Phase.Expired, 0, e.at, e.blockNumber);
        _freeReplica(placementId, p, deploymentId, deviceId, previous == PlacementState.Running);
        emit PlacementExpired(placementId, deploymentId, deviceId, generation, e.at, e.blockNumber, previous);
    }

    function _recordEnd(
        PlacementRecord storage p,
        Phase phase,
        uint8 code,
        uint40 at,
        uint40 blockNumber
    ) private {
        p.phase = phase;
        p.code = code;
        p.endedAt = at;
        p.endedBlock = blockNumber;
    }

    function _freeReplica(
        uint64 placementId,
        PlacementRecord storage p,
        uint32 deploymentId,
        uint32 deviceId,
        bool wasRunning
    ) private {
        DeploymentUsage storage du = _deploymentUsage[deploymentId];
        if (p.deploymentGeneration == du.generation) {
            du.liveReplicas -= 1;
            if (wasRunning) du.runningReplicas -= 1;
        }
        if (_active[deploymentId][deviceId] == placementId) delete _active[deploymentId][deviceId];
    }

    /// @dev A stranger's release of a superseded placement of an active deployment: allowed once the new
    /// generation runs as many replicas as asked for, or once the placement's device is stale.
    function _checkRollDone(
        uint64 placementId,
        uint32 deploymentId,
        uint32 deviceId,
        IAppRegistry.DeploymentSummary memory s
    ) private view {
        DeploymentUsage storage du = _deploymentUsage[deploymentId];
        // The usage is of an older generation only without an observer (it never runs ahead).
        uint32 running = du.generation < s.generation ? 0 : du.runningReplicas;
        if (running < s.replicas && !_devices.isStale(deviceId))
            revert PlacementRegistryRollInProgress(placementId, running, s.replicas);
    }

    /// @dev A placement that exists, has not ended and whose device has not been expired since.
    function _livePlacement(
        uint64 placementId
    ) private view returns (PlacementRecord storage p, uint32 deviceId) {
        p = _existingPlacement(placementId);
        if (uint8(p.phase) > uint8(Phase.Running)) {
            revert PlacementRegistryInvalidTransition(placementId, _recorded(p.phase));
        }
        deviceId = p.deviceId;
        if (p.deviceGeneration != _deviceUsage[deviceId].generation)
            revert PlacementRegistryPlacementExpired(placementId);
    }

    function _existingPlacement(uint64 placementId) private view returns (PlacementRecord storage p) {
        p = _placements[placementId];
        if (p.deviceId == 0) revert PlacementRegistryUnknownPlacement(placementId);
    }

    function _checkDeviceCaller(uint32 deviceId) private view {
        if (!_devices.isAuthorized(deviceId, msg.sender))
            revert PlacementRegistryUnauthorizedAccount(deviceId, msg.sender);
    }

    function _state(
        PlacementRecord storage p,
        uint32 deploymentGeneration
    ) private view returns (PlacementState) {
        Phase phase = p.phase;
        if (uint8(phase) > uint8(Phase.Running)) return _recorded(phase);
        if (p.deviceGeneration != _deviceUsage[p.deviceId].generation) return PlacementState.Expired;
        if (p.deploymentGeneration != deploymentGeneration) return PlacementState.Superseded;
        return _recorded(phase);
    }

    function _view(
        uint64 placementId,
        IAppRegistry.DeploymentSummary memory s
    ) private view returns (Placement memory out) {
        PlacementRecord storage p = _placements[placementId];
        uint32 deploymentId = _deploymentOf(placementId);
        out.placementId = placementId;
        out.deploymentId = deploymentId;
        out.deviceId = p.deviceId;
        out.appId = s.appId;
        out.version = _apps.deploymentVersionAt(deploymentId, p.deploymentGeneration);
        out.deploymentGeneration = p.deploymentGeneration;
        out.deviceGeneration = p.deviceGeneration;
        out.state = _state(p, s.generation);
        out.code = p.code;
        out.claimedAt = p.claimedAt;
        out.claimedBlock = p.claimedBlock;
        out.runningAt = p.runningAt;
        out.runningBlock = p.runningBlock;
        out.endedAt = p.endedAt;
        out.endedBlock = p.endedBlock;
        // Expired by its device's generation but not finalized yet: it ended when the device was expired.
        if (
            uint8(p.phase) <= uint8(Phase.Running) &&
            p.deviceGeneration != _deviceUsage[p.deviceId].generation
        ) {
            Expiry memory e = _expiries[p.deviceId][p.deviceGeneration];
            out.endedAt = e.at;
            out.endedBlock = e.blockNumber;
        }
    }

    function _deploymentOf(uint64 placementId) private pure returns (uint32) {
        return uint32(placementId >> 32);
    }

    function _recorded(Phase phase) private pure returns (PlacementState) {
        // Phase and PlacementState share their order, offset by PlacementState.None.
        return PlacementState(uint8(phase) + 1);
    }
}
