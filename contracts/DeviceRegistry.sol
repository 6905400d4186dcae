// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {Pausable} from "@openzeppelin/contracts/utils/Pausable.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {IDeviceRegistry} from "./interfaces/IDeviceRegistry.sol";
import {IPlacementRegistry} from "./interfaces/IPlacementRegistry.sol";
import {Labels} from "./libraries/Labels.sol";
import {Platforms} from "./libraries/Platforms.sol";

/// @title DeviceRegistry
/// @notice Staked enrollment of edge devices, heartbeats, exit with an unbonding delay, slashing and
/// reputation. Holds every stake; `totalStaked()` equals the token balance unless tokens are sent to it
/// directly. Every call is O(1); the only loops run over a device's <= 8 labels.
/// @dev The staking token must move exactly the amounts asked (no fee on transfer, no rebasing): the
/// registry books the amount it asked for. The deploy script only ever uses ShoalToken.
contract DeviceRegistry is IDeviceRegistry, AccessControl, Pausable, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    /// @notice May slash faults proven off chain.
    bytes32 public constant SLASHER_ROLE = keccak256("SLASHER_ROLE");
    /// @notice The PlacementRegistry: slashes liveness faults and counts outcomes.
    bytes32 public constant PLACEMENT_ROLE = keccak256("PLACEMENT_ROLE");
    /// @notice May pause and resume enrollment.
    bytes32 public constant PAUSER_ROLE = keccak256("PAUSER_ROLE");
    /// @notice The longest endpoint, in bytes.
    uint256 public constant MAX_ENDPOINT_LENGTH = 256;

    uint256 private constant _BPS = 10_000;

    /// @dev Slot 0 and 1 serve heartbeats and authorization; claims read slots 0 to 3.
    struct DeviceRecord {
        address owner;
        uint96 stake;
        address operator;
        uint40 lastHeartbeat;
        DeviceStatus status;
        uint8 labelCount;
        uint32 cpuMillicores;
        uint32 memoryMiB;
        uint40 withdrawableAt;
        uint32 completed;
        uint32 failed;
        uint32 expired;
        string platform;
        bytes8[8] labels;
    }

    IERC20 private immutable _token;
    address private immutable _deployer = msg.sender;
    IPlacementRegistry private _placementRegistry;
    Parameters private _parameters;
    address private _treasury;
    uint32 private _deviceCount;
    uint256 private _totalStaked;
    mapping(uint32 deviceId => DeviceRecord record) private _devices;

    /// @param token_ The staking token.
    /// @param admin Holds DEFAULT_ADMIN_ROLE and PAUSER_ROLE.
    /// @param treasury_ Receives slashed stake less bounties.
    /// @param parameters_ See {Parameters}.
    constructor(IERC20 token_, address admin, address treasury_, Parameters memory parameters_) {
        _token = token_;
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(PAUSER_ROLE, admin);
        _setTreasury(treasury_);
        _setParameters(parameters_);
    }

    // ---------------------------------------------------------------- device owner and operator

    /// @inheritdoc IDeviceRegistry
    function enroll(
        address operator,
        string calldata platform,
        uint32 cpuMillicores,
        uint32 memoryMiB,
        string[] calldata labels,
        string calldata endpoint,
        uint256 stake
    ) external whenNotPaused nonReentrant returns (uint32 deviceId) {
        deviceId = _register(operator, platform, cpuMillicores, memoryMiB, labels, endpoint, stake);
        emit DeviceEnrolled(
            deviceId,
            msg.sender,
            operator,
            platform,
            cpuMillicores,
            memoryMiB,
            labels,
            endpoint,
            stake
        );

        _token.safeTransferFrom(msg.sender, address(this), stake);
    }

    /// @inheritdoc IDeviceRegistry
    function heartbeat(uint32 deviceId) external {
        DeviceRecord storage d = _devices[deviceId];
        // The operator is checked first: it is the worker's key and shares the slot being written.
        if (msg.sender != d.operator && msg.sender != d.owner)
            revert DeviceRegistryUnauthorizedAccount(deviceId, msg.sender);
        DeviceStatus status = d.status;
        if (status != DeviceStatus.Active && status != DeviceStatus.Exiting)
            revert DeviceRegistryNotActive(deviceId, status);
        d.lastHeartbeat = uint40(block.timestamp);
        emit DeviceHeartbeat(deviceId);
    }

    /// @inheritdoc IDeviceRegistry
    function setOperator(uint32 deviceId, address operator) external {
        DeviceRecord storage d = _ownedDevice(deviceId);
        if (operator == address(0)) revert DeviceRegistryInvalidOperator(operator);
        address previous = d.operator;
        d.operator = operator;
        emit DeviceOperatorChanged(deviceId, previous, operator);
    }

    /// @inheritdoc IDeviceRegistry
    function setEndpoint(uint32 deviceId, string calldata endpoint) external {
        _authorizedDevice(deviceId);
        _checkEndpoint(endpoint);
        // The endpoint lives in the log only: peers read the latest DeviceEnrolled/DeviceEndpointChanged.
        emit DeviceEndpointChanged(deviceId, endpoint);
    }

    /// @inheritdoc IDeviceRegistry
    function topUp(uint32 deviceId, uint256 amount) external nonReentrant {
        DeviceRecord storage d = _ownedDevice(deviceId);
        if (d.status != DeviceStatus.Active) revert DeviceRegistryNotActive(deviceId, d.status);
        if (amount == 0) revert DeviceRegistryZeroAmount();
        uint256 stake = d.stake + amount;
        if (stake > type(uint96).max) revert DeviceRegistryStakeTooLarge(stake);
        d.stake = uint96(stake);
        _totalStaked += amount;
        emit DeviceStakeIncreased(deviceId, msg.sender, amount, stake);

        _token.safeTransferFrom(msg.sender, address(this), amount);
    }

    /// @inheritdoc IDeviceRegistry
    function requestExit(uint32 deviceId) external {
        DeviceRecord storage d = _ownedDevice(deviceId);
        if (d.status != DeviceStatus.Active) revert DeviceRegistryNotActive(deviceId, d.status);
        // Refused rather than released here: the device (or the app owners) end its placements in the
        // PlacementRegistry, each with its reason; an exiting device cannot claim, so none appears later.
        IPlacementRegistry placements = _placementRegistry;
        if (address(placements) != address(0)) {
            uint32 live = placements.deviceUsage(deviceId).livePlacements;
            if (live != 0) revert DeviceRegistryLivePlacements(deviceId, live);
        }
        uint40 withdrawableAt = uint40(block.timestamp) + _parameters.unbondingDelay;
        d.status = DeviceStatus.Exiting;
        d.withdrawableAt = withdrawableAt;
        emit DeviceExitRequested(deviceId, withdrawableAt, d.stake);
    }

    /// @inheritdoc IDeviceRegistry
    function completeExit(uint32 deviceId) external nonReentrant {
        DeviceRecord storage d = _ownedDevice(deviceId);
        if (d.status != DeviceStatus.Exiting) revert DeviceRegistryNotExiting(deviceId, d.status);
        if (block.timestamp < d.withdrawableAt) revert DeviceRegistryUnbonding(deviceId, d.withdrawableAt);
        // Under the current TTL: raising it during the exit must not let a fresh device leave.
        if (block.timestamp <= uint256(d.lastHeartbeat) + _parameters.heartbeatTtl)
            revert DeviceRegistryExitWhileFresh(deviceId, d.lastHeartbeat);
        uint256 amount = d.stake;
        d.stake = 0;
        d.status = DeviceStatus.Exited;
        _totalStaked -= amount;
        emit DeviceExited(deviceId, msg.sender, amount);

        if (amount != 0) _token.safeTransfer(msg.sender, amount);
    }

    // ---------------------------------------------------------------- slashing and reputation

    /// @inheritdoc IDeviceRegistry
    function slash(
        uint32 deviceId,
        uint256 amount,
        string calldata evidenceCid
    ) external onlyRole(SLASHER_ROLE) nonReentrant returns (uint256 slashed) {
        DeviceRecord storage d = _existingDevice(deviceId);
        if (amount == 0) revert DeviceRegistryZeroAmount();
        if (bytes(evidenceCid).length == 0) revert DeviceRegistryMissingEvidence(deviceId);
        uint256 stake = d.stake;
        if (stake == 0) revert DeviceRegistryNothingToSlash(deviceId);
        slashed = amount < stake ? amount : stake;
        d.stake = uint96(stake - slashed);
        _totalStaked -= slashed;
        emit DeviceSlashed(
            deviceId,
            msg.sender,
            SlashKind.Fault,
            slashed,
            0,
            address(0),
            stake - slashed,
            evidenceCid
        );

        _token.safeTransfer(_treasury, slashed);
    }

    /// @inheritdoc IDeviceRegistry
    function slashLiveness(
        uint32 deviceId,
        address bountyRecipient,
        uint32 expiredPlacements
    ) external onlyRole(PLACEMENT_ROLE) nonReentrant returns (uint256 slashed, uint256 bounty) {
        DeviceRecord storage d = _existingDevice(deviceId);
        Parameters memory p = _parameters;
        uint256 stake = d.stake;
        // The collateral of every placement held: the slash grows with what the device left unserved.
        slashed =
            Math.mulDiv(stake, p.livenessSlashBps, _BPS) +
            uint256(p.collateralPerPlacement) * expiredPlacements;
        if (slashed > stake) slashed = stake;
        if (bountyRecipient != address(0)) bounty = Math.mulDiv(slashed, p.bountyBps, _BPS);
        d.stake = uint96(stake - slashed);
        d.expired += expiredPlacements;
        if (slashed == 0) return (0, 0);
        _totalStaked -= slashed;
        emit DeviceSlashed(
            deviceId,
            msg.sender,
            SlashKind.Liveness,
            slashed,
            bounty,
            bountyRecipient,
            stake - slashed,
            ""
        );

        if (bounty != 0) _token.safeTransfer(bountyRecipient, bounty);
        if (slashed != bounty) _token.safeTransfer(_treasury, slashed - bounty);
    }

    /// @inheritdoc IDeviceRegistry
    function recordOutcome(uint32 deviceId, Outcome outcome) external onlyRole(PLACEMENT_ROLE) {
        DeviceRecord storage d = _existingDevice(deviceId);
        if (outcome == Outcome.Completed) ++d.completed;
        else if (outcome == Outcome.Failed) ++d.failed;
        else ++d.expired;
    }

    // ---------------------------------------------------------------- administration

    /// @inheritdoc IDeviceRegistry
    function setParameters(Parameters calldata newParameters) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setParameters(newParameters);
    }

    /// @inheritdoc IDeviceRegistry
    function setPlacementRegistry(address placementRegistry_) external {
        if (msg.sender != _deployer) revert DeviceRegistryNotDeployer(msg.sender);
        if (address(_placementRegistry) != address(0) || placementRegistry_ == address(0))
            revert DeviceRegistryInvalidPlacementRegistry(address(_placementRegistry));
        _placementRegistry = IPlacementRegistry(placementRegistry_);
        emit PlacementRegistrySet(placementRegistry_);
    }

    /// @inheritdoc IDeviceRegistry
    function setTreasury(address newTreasury) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _setTreasury(newTreasury);
    }

    /// @inheritdoc IDeviceRegistry
    function pause() external onlyRole(PAUSER_ROLE) {
        _pause();
    }

    /// @inheritdoc IDeviceRegistry
    function unpause() external onlyRole(PAUSER_ROLE) {
        _unpause();
    }

    // ---------------------------------------------------------------- views

    /// @inheritdoc IDeviceRegistry
    function device(uint32 deviceId) external view returns (Device memory out) {
        DeviceRecord storage d = _existingDevice(deviceId);
        out.owner = d.owner;
        out.operator = d.operator;
        out.status = d.status;
        out.stake = d.stake;
        out.cpuMillicores = d.cpuMillicores;
        out.memoryMiB = d.memoryMiB;
        out.lastHeartbeat = d.lastHeartbeat;
        out.withdrawableAt = d.withdrawableAt;
        out.platform = d.platform;
        uint256 n = d.labelCount;
        out.labels = new bytes8[](n);
        for (uint256 i; i < n; ++i) {
            out.labels[i] = d.labels[i];
        }
    }

    /// @inheritdoc IDeviceRegistry
    function reputation(uint32 deviceId) external view returns (Reputation memory) {
        DeviceRecord storage d = _existingDevice(deviceId);
        return Reputation({completed: d.completed, failed: d.failed, expired: d.expired});
    }

    /// @inheritdoc IDeviceRegistry
    function claimContext(uint32 deviceId) external view returns (ClaimContext memory c) {
        DeviceRecord storage d = _existingDevice(deviceId);
        Parameters memory p = _parameters;
        c.owner = d.owner;
        c.stake = d.stake;
        c.operator = d.operator;
        c.lastHeartbeat = d.lastHeartbeat;
        c.status = d.status;
        c.staked = c.stake >= p.minStake;
        c.fresh = block.timestamp <= uint256(c.lastHeartbeat) + p.heartbeatTtl;
        c.cpuMillicores = d.cpuMillicores;
        c.memoryMiB = d.memoryMiB;
        c.platformKey = Platforms.key(d.platform);
        c.minStake = p.minStake;
        c.collateralPerPlacement = p.collateralPerPlacement;
    }

    /// @inheritdoc IDeviceRegistry
    function missingLabel(uint32 deviceId, bytes8[] calldata required) external view returns (bytes8) {
        DeviceRecord storage d = _existingDevice(deviceId);
        uint256 n = d.labelCount;
        // At most 8 x 8 comparisons; after the first read of each slot, reads are warm.
        for (uint256 r = 0; r < required.length; ++r) {
            bytes8 wanted = required[r];
            uint256 i = 0;
            while (i < n && d.labels[i] != wanted) ++i;
            if (i == n) return wanted;
        }
        return bytes8(0);
    }

    /// @inheritdoc IDeviceRegistry
    function isAuthorized(uint32 deviceId, address account) external view returns (bool) {
        DeviceRecord storage d = _devices[deviceId];
        return account != address(0) && (account == d.operator || account == d.owner);
    }

    /// @inheritdoc IDeviceRegistry
    function isStale(uint32 deviceId) external view returns (bool) {
        return block.timestamp > uint256(_existingDevice(deviceId).lastHeartbeat) + _parameters.heartbeatTtl;
    }

    /// @inheritdoc IDeviceRegistry
    function placementRegistry() external view returns (address) {
        return address(_placementRegistry);
    }

    /// @inheritdoc IDeviceRegistry
    function parameters() external view returns (Parameters memory) {
        return _parameters;
    }

    /// @inheritdoc IDeviceRegistry
    function token() external view returns (address) {
        return address(_token);
    }

    /// @inheritdoc IDeviceRegistry
    function treasury() external view returns (address) {
        return _treasury;
    }

    /// @inheritdoc IDeviceRegistry
    function deviceCount() external view returns (uint32) {
        return _deviceCount;
    }

    /// @inheritdoc IDeviceRegistry
    function totalStaked() external view returns (uint256) {
        return _totalStaked;
    }

    // ---------------------------------------------------------------- internals

    /// @dev The checks and effects of {enroll}.
    function _register(
        address operator,
        string calldata platform,
        uint32 cpuMillicores,
        uint32 memoryMiB,
        string[] calldata labels,
        string calldata endpoint,
        uint256 stake
    ) private returns (uint32 deviceId) {
        if (operator == address(0)) revert DeviceRegistryInvalidOperator(operator);
        if (!Platforms.isValid(platform)) revert DeviceRegistryInvalidPlatform(platform);
        if (cpuMillicores == 0 || memoryMiB == 0)
            revert DeviceRegistryInvalidCapacity(cpuMillicores, memoryMiB);
        _checkEndpoint(endpoint);
        uint256 minStake = _parameters.minStake;
        if (stake < minStake) revert DeviceRegistryInsufficientStake(stake, minStake);
        if (stake > type(uint96).max) revert DeviceRegistryStakeTooLarge(stake);
        bytes8[] memory keys = Labels.toKeys(labels);

        deviceId = ++_deviceCount;
        DeviceRecord storage d = _devices[deviceId];
        d.owner = msg.sender;
        d.stake = uint96(stake);
        d.operator = operator;
        d.lastHeartbeat = uint40(block.timestamp);
        d.status = DeviceStatus.Active;
        d.labelCount = uint8(keys.length);
        d.cpuMillicores = cpuMillicores;
        d.memoryMiB = memoryMiB;
        d.platform = platform;
        for (uint256 i; i < keys.length; ++i) {
            d.labels[i] = keys[i];
        }
        _totalStaked += stake;
    }

    function _existingDevice(uint32 deviceId) private view returns (DeviceRecord storage d) {
        d = _devices[deviceId];
        if (d.owner == address(0)) revert DeviceRegistryUnknownDevice(deviceId);
    }

    function _ownedDevice(uint32 deviceId) private view returns (DeviceRecord storage d) {
        d = _existingDevice(deviceId);
        if (d.owner != msg.sender) revert DeviceRegistryNotDeviceOwner(deviceId, msg.sender);
    }

    function _authorizedDevice(uint32 deviceId) private view returns (DeviceRecord storage d) {
        d = _existingDevice(deviceId);
        if (msg.sender != d.operator && msg.sender != d.owner)
            revert DeviceRegistryUnauthorizedAccount(deviceId, msg.sender);
    }

    function _checkEndpoint(string calldata endpoint) private pure {
        uint256 length = bytes(endpoint).length;
        if (length == 0 || length > MAX_ENDPOINT_LENGTH) revert DeviceRegistryInvalidEndpoint(endpoint);
    }

    function _setParameters(Parameters memory p) private {
        if (
            p.minStake == 0 ||
            p.heartbeatTtl == 0 ||
            p.unbondingDelay <= p.heartbeatTtl ||
            p.livenessSlashBps > _BPS ||
            p.bountyBps > _BPS
        ) revert DeviceRegistryInvalidParameters(p);
        _parameters = p;
        emit ParametersChanged(p);
    }

    function _setTreasury(address treasury_) private {
        if (treasury_ == address(0)) revert DeviceRegistryInvalidTreasury(treasury_);
        _treasury = treasury_;
        emit TreasuryChanged(treasury_);
    }
}
