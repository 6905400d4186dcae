// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IAppRegistry} from "./interfaces/IAppRegistry.sol";
import {IDeploymentObserver} from "./interfaces/IDeploymentObserver.sol";
import {Labels} from "./libraries/Labels.sol";
import {Platforms} from "./libraries/Platforms.sol";

/// @title AppRegistry
/// @notice Apps, immutable versions (manifest CID, one image CID per platform, resource band) and
/// deployments (version, replicas, required labels). Every call is O(1) in the number of apps,
/// versions and deployments; the only loops run over bounded lists (<= 8 platforms, <= 8 labels).
contract AppRegistry is IAppRegistry {
    /// @notice The largest number of platforms one version may name.
    uint256 public constant MAX_PLATFORMS = 8;
    /// @notice The longest CID accepted, in bytes (CIDv1 base32 text is about 59).
    uint256 public constant MAX_CID_LENGTH = 128;
    /// @notice The longest provider multiaddr, in bytes (as a device endpoint).
    uint256 public constant MAX_PROVIDER_LENGTH = 256;
    /// @notice The longest app name, in bytes.
    uint256 public constant MAX_NAME_LENGTH = 64;

    struct AppRecord {
        address owner;
        uint32 versionCount;
        string name;
    }

    struct VersionRecord {
        ResourceBand band;
        uint40 publishedAt;
        bool deprecated;
        string manifestCid;
        string[] platforms;
        mapping(bytes32 platformKey => string imageCid) images;
    }

    /// @dev The first slot holds every field a claim reads; required label keys follow, four per slot.
    struct DeploymentRecord {
        uint32 appId;
        uint32 version;
        uint32 generation;
        uint32 replicas;
        bool active;
        uint8 labelCount;
        bytes8[8] requiredLabels;
        mapping(uint32 generation => uint32 version) versionAt;
    }

    address private immutable _deployer = msg.sender;
    IDeploymentObserver private _observer;
    uint32 private _appCount;
    uint32 private _deploymentCount;
    mapping(uint32 appId => AppRecord record) private _apps;
    mapping(bytes32 nameHash => uint32 appId) private _appIdByName;
    mapping(uint32 appId => mapping(uint32 versionNumber => VersionRecord record)) private _versions;
    mapping(uint32 deploymentId => DeploymentRecord record) private _deployments;

    modifier onlyAppOwner(uint32 appId) {
        _checkAppOwner(appId);
        _;
    }

    /// @inheritdoc IAppRegistry
    function setObserver(IDeploymentObserver newObserver) external {
        if (msg.sender != _deployer) revert AppRegistryNotDeployer(msg.sender);
        if (address(_observer) != address(0)) revert AppRegistryInvalidObserver(address(_observer));
        if (address(newObserver) == address(0)) revert AppRegistryInvalidObserver(address(0));
        _observer = newObserver;
        emit ObserverSet(address(newObserver));
    }

    // ---------------------------------------------------------------- apps

    /// @inheritdoc IAppRegistry
    function registerApp(string calldata name) external returns (uint32 appId) {
        if (!_isSlug(bytes(name))) revert AppRegistryInvalidName(name);
        bytes32 nameHash = keccak256(bytes(name));
        uint32 holder = _appIdByName[nameHash];
        if (holder != 0) revert AppRegistryNameTaken(name, holder);

        appId = ++_appCount;
        AppRecord storage a = _apps[appId];
        a.owner = msg.sender;
        a.name = name;
        _appIdByName[nameHash] = appId;
        emit AppRegistered(appId, msg.sender, name);
    }

    /// @inheritdoc IAppRegistry
    function transferApp(uint32 appId, address newOwner) external onlyAppOwner(appId) {
        if (newOwner == address(0)) revert AppRegistryInvalidOwner(newOwner);
        AppRecord storage a = _apps[appId];
        address previousOwner = a.owner;
        a.owner = newOwner;
        emit AppTransferred(appId, previousOwner, newOwner);
    }

    // ---------------------------------------------------------------- versions

    /// @inheritdoc IAppRegistry
    function publishVersion(
        uint32 appId,
        string calldata manifestCid,
        string[] calldata platforms,
        string[] calldata imageCids,
        ResourceBand calldata band
    ) external onlyAppOwner(appId) returns (uint32 versionNumber) {
        _checkCid(manifestCid);
        uint256 n = platforms.length;
        if (n == 0 || n > MAX_PLATFORMS || n != imageCids.length) {
            revert AppRegistryInvalidPlatformCount(n, imageCids.length, MAX_PLATFORMS);
        }
        if (
            band.cpuMinMillicores == 0 ||
            band.cpuMinMillicores > band.cpuMaxMillicores ||
            band.memoryMinMiB == 0 ||
            band.memoryMinMiB > band.memoryMaxMiB
        ) {
            revert AppRegistryInvalidBand(
                band.cpuMinMillicores,
                band.cpuMaxMillicores,
                band.memoryMinMiB,
                band.memoryMaxMiB
            );
        }

        versionNumber = ++_apps[appId].versionCount;
        VersionRecord storage v = _versions[appId][versionNumber];
        v.band = band;
        v.publishedAt = uint40(block.timestamp);
        v.manifestCid = manifestCid;
        for (uint256 i; i < n; ++i) {
            if (!Platforms.isValid(platforms[i])) revert AppRegistryInvalidPlatform(platforms[i]);
            _checkCid(imageCids[i]);
            bytes32 platformKey = Platforms.key(platforms[i]);
            // A duplicate finds the image its first occurrence stored a moment ago.
            if (bytes(v.images[platformKey]).length != 0) revert AppRegistryDuplicatePlatform(platforms[i]);
            v.images[platformKey] = imageCids[i];
            v.platforms.push(platforms[i]);
        }
        emit VersionPublished(appId, versionNumber, manifestCid, platforms, imageCids, band);
    }

    /// @inheritdoc IAppRegistry
    function deprecateVersion(uint32 appId, uint32 versionNumber) external onlyAppOwner(appId) {
        VersionRecord storage v = _publishedVersion(appId, versionNumber);
        if (v.deprecated) revert AppRegistryVersionDeprecated(appId, versionNumber);
        v.deprecated = true;
        emit VersionDeprecated(appId, versionNumber);
    }

    /// @inheritdoc IAppRegistry
    function announceProvider(
        uint32 appId,
        uint32 versionNumber,
        string calldata provider
    ) external onlyAppOwner(appId) {
        _publishedVersion(appId, versionNumber);
        uint256 length = bytes(provider).length;
        if (length == 0 || length > MAX_PROVIDER_LENGTH) revert AppRegistryInvalidProvider(provider);
        // Log only, like a device's endpoint: nothing on chain reads it, so it costs no storage.
        emit VersionProviderAnnounced(appId, versionNumber, provider);
    }

    // ---------------------------------------------------------------- deployments

    /// @inheritdoc IAppRegistry
    function createDeployment(
        uint32 appId,
        uint32 versionNumber,
        uint32 replicas,
        string[] calldata requiredLabels
    ) external onlyAppOwner(appId) returns (uint32 deploymentId) {
        deploymentId = _create(appId, versionNumber, replicas, Labels.toKeys(requiredLabels));
        emit DeploymentCreated(
            deploymentId,
            appId,
            versionNumber,
            replicas,
            1,
            requiredLabels,
            _versionView(appId, versionNumber)
        );

        // After the effects and the event: the observer is the PlacementRegistry, set by the deployer.
        IDeploymentObserver o = _observer;
        if (address(o) != address(0)) o.onDeploymentCreated(deploymentId);
    }

    /// @inheritdoc IAppRegistry
    function scaleDeployment(uint32 deploymentId, uint32 replicas) external {
        DeploymentRecord storage d = _activeDeploymentOfCaller(deploymentId);
        if (replicas == 0) revert AppRegistryInvalidReplicas(replicas);
        uint32 previous = d.replicas;
        if (replicas == previous) revert AppRegistryReplicasUnchanged(deploymentId, replicas);
        if (replicas > previous && _versions[d.appId][d.version].deprecated)
            revert AppRegistryVersionDeprecated(d.appId, d.version);
        d.replicas = replicas;
        emit DeploymentScaled(deploymentId, d.appId, previous, replicas);
    }

    /// @inheritdoc IAppRegistry
    function rollDeployment(uint32 deploymentId, uint32 versionNumber) external {
        DeploymentRecord storage d = _activeDeploymentOfCaller(deploymentId);
        uint32 appId = d.appId;
        uint32 previous = d.version;
        if (versionNumber <= previous)
            revert AppRegistryVersionNotNewer(deploymentId, previous, versionNumber);
        _checkDeployable(appId, versionNumber);
        uint32 generation = ++d.generation;
        d.version = versionNumber;
        d.versionAt[generation] = versionNumber;
        emit DeploymentRolled(
            deploymentId,
            appId,
            versionNumber,
            previous,
            generation,
            _versionView(appId, versionNumber)
        );

        _notifyGeneration(deploymentId, generation);
    }

    /// @inheritdoc IAppRegistry
    function stopDeployment(uint32 deploymentId) external {
        DeploymentRecord storage d = _activeDeploymentOfCaller(deploymentId);
        uint32 generation = ++d.generation;
        d.active = false;
        d.versionAt[generation] = d.version;
        emit DeploymentStopped(deploymentId, d.appId, generation);

        _notifyGeneration(deploymentId, generation);
    }

    // ---------------------------------------------------------------- views

    /// @inheritdoc IAppRegistry
    function app(uint32 appId) external view returns (App memory) {
        AppRecord storage a = _existingApp(appId);
        return App({owner: a.owner, versionCount: a.versionCount, name: a.name});
    }

    /// @inheritdoc IAppRegistry
    function appIdOf(string calldata name) external view returns (uint32) {
        return _appIdByName[keccak256(bytes(name))];
    }

    /// @inheritdoc IAppRegistry
    function appOwner(uint32 appId) external view returns (address) {
        return _existingApp(appId).owner;
    }

    /// @inheritdoc IAppRegistry
    function version(uint32 appId, uint32 versionNumber) external view returns (Version memory) {
        _publishedVersion(appId, versionNumber);
        return _versionView(appId, versionNumber);
    }

    /// @dev A published version as a {Version}.
    function _versionView(uint32 appId, uint32 versionNumber) private view returns (Version memory out) {
        VersionRecord storage v = _versions[appId][versionNumber];
        uint256 n = v.platforms.length;
        out.band = v.band;
        out.publishedAt = v.publishedAt;
        out.deprecated = v.deprecated;
        out.manifestCid = v.manifestCid;
        out.platforms = v.platforms;
        out.imageCids = new string[](n);
        for (uint256 i; i < n; ++i) {
            out.imageCids[i] = v.images[Platforms.key(v.platforms[i])];
        }
    }

    /// @inheritdoc IAppRegistry
    function imageOf(
        uint32 appId,
        uint32 versionNumber,
        string calldata platform
    ) external view returns (string memory) {
        return _publishedVersion(appId, versionNumber).images[Platforms.key(platform)];
    }

    /// @inheritdoc IAppRegistry
    function deployment(uint32 deploymentId) external view returns (Deployment memory out) {
        DeploymentRecord storage d = _existingDeployment(deploymentId);
        out.appId = d.appId;
        out.version = d.version;
        out.generation = d.generation;
        out.replicas = d.replicas;
        out.active = d.active;
        out.requiredLabels = _requiredLabels(d);
    }

    /// @inheritdoc IAppRegistry
    function deploymentSummary(uint32 deploymentId) external view returns (DeploymentSummary memory) {
        DeploymentRecord storage d = _existingDeployment(deploymentId);
        return
            DeploymentSummary({
                owner: _apps[d.appId].owner,
                appId: d.appId,
                version: d.version,
                generation: d.generation,
                replicas: d.replicas,
                active: d.active
            });
    }

    /// @inheritdoc IAppRegistry
    function bandAt(uint32 deploymentId, uint32 generation) external view returns (ResourceBand memory) {
        DeploymentRecord storage d = _existingDeployment(deploymentId);
        return _publishedVersion(d.appId, d.versionAt[generation]).band;
    }

    /// @inheritdoc IAppRegistry
    function deploymentVersionAt(uint32 deploymentId, uint32 generation) external view returns (uint32) {
        return _existingDeployment(deploymentId).versionAt[generation];
    }

    /// @inheritdoc IAppRegistry
    function claimTerms(
        uint32 deploymentId,
        bytes32 platformKey
    ) external view returns (ClaimTerms memory t) {
        DeploymentRecord storage d = _existingDeployment(deploymentId);
        t.appId = d.appId;
        t.version = d.version;
        t.generation = d.generation;
        t.replicas = d.replicas;
        t.active = d.active;
        t.requiredLabels = _requiredLabels(d);
        VersionRecord storage v = _versions[t.appId][t.version];
        t.band = v.band;
        t.deprecated = v.deprecated;
        // Only the length slot is read: claims need to know the image exists, not its CID.
        t.platformSupported = bytes(v.images[platformKey]).length != 0;
    }

    /// @inheritdoc IAppRegistry
    function observer() external view returns (IDeploymentObserver) {
        return _observer;
    }

    /// @inheritdoc IAppRegistry
    function appCount() external view returns (uint32) {
        return _appCount;
    }

    /// @inheritdoc IAppRegistry
    function deploymentCount() external view returns (uint32) {
        return _deploymentCount;
    }

    // ---------------------------------------------------------------- internals

    /// @dev The checks and effects of {createDeployment}; `keys` are the required labels' keys.
    function _create(
        uint32 appId,
        uint32 versionNumber,
        uint32 replicas,
        bytes8[] memory keys
    ) private returns (uint32 deploymentId) {
        _checkDeployable(appId, versionNumber);
        if (replicas == 0) revert AppRegistryInvalidReplicas(replicas);
        deploymentId = ++_deploymentCount;
        DeploymentRecord storage d = _deployments[deploymentId];
        d.appId = appId;
        d.version = versionNumber;
        d.generation = 1;
        d.replicas = replicas;
        d.active = true;
        d.labelCount = uint8(keys.length);
        for (uint256 i; i < keys.length; ++i) {
            d.requiredLabels[i] = keys[i];
        }
        d.versionAt[1] = versionNumber;
    }

    /// @dev After the effects and the event, like the creation's notice.
    function _notifyGeneration(uint32 deploymentId, uint32 generation) private {
        IDeploymentObserver o = _observer;
        if (address(o) != address(0)) o.onDeploymentGenerationChanged(deploymentId, generation);
    }

    function _checkAppOwner(uint32 appId) private view {
        if (_existingApp(appId).owner != msg.sender) revert AppRegistryUnauthorizedAccount(appId, msg.sender);
    }

    function _existingApp(uint32 appId) private view returns (AppRecord storage a) {
        a = _apps[appId];
        if (a.owner == address(0)) revert AppRegistryUnknownApp(appId);
    }

    function _publishedVersion(
        uint32 appId,
        uint32 versionNumber
    ) private view returns (VersionRecord storage) {
        if (versionNumber == 0 || versionNumber > _existingApp(appId).versionCount) {
            revert AppRegistryUnknownVersion(appId, versionNumber);
        }
        return _versions[appId][versionNumber];
    }

    function _checkDeployable(uint32 appId, uint32 versionNumber) private view {
        if (_publishedVersion(appId, versionNumber).deprecated) {
            revert AppRegistryVersionDeprecated(appId, versionNumber);
        }
    }

    function _existingDeployment(uint32 deploymentId) private view returns (DeploymentRecord storage d) {
        d = _deployments[deploymentId];
        if (d.generation == 0) revert AppRegistryUnknownDeployment(deploymentId);
    }

    /// @dev The deployment, checked to exist, to be active and to belong to the caller.
    function _activeDeploymentOfCaller(
        uint32 deploymentId
    ) private view returns (DeploymentRecord storage d) {
        d = _existingDeployment(deploymentId);
        _checkAppOwner(d.appId);
        if (!d.active) revert AppRegistryDeploymentStopped(deploymentId);
    }

    function _requiredLabels(DeploymentRecord storage d) private view returns (bytes8[] memory keys) {
        uint256 n = d.labelCount;
        keys = new bytes8[](n);
        for (uint256 i; i < n; ++i) {
            keys[i] = d.requiredLabels[i];
        }
    }

    /// @dev The canonical form, the manifest's `name` pattern: `[a-z]([a-z0-9-]*[a-z0-9])?`, 1 to
    /// MAX_NAME_LENGTH bytes. Bytes, not characters: any byte >= 0x80 (every non-ASCII character,
    /// homoglyphs and invisible ones included) and every upper-case letter is refused.
    function _isSlug(bytes calldata name) private pure returns (bool) {
        uint256 length = name.length;
        if (length == 0 || length > MAX_NAME_LENGTH) return false;
        if (name[0] < "a" || name[0] > "z" || name[length - 1] == "-") return false;
        for (uint256 i = 1; i < length; ++i) {
            bytes1 b = name[i];
            if ((b < "a" || b > "z") && (b < "0" || b > "9") && b != "-") return false;
        }
        return true;
    }

    function _checkCid(string calldata cid) private pure {
        uint256 length = bytes(cid).length;
        if (length == 0 || length > MAX_CID_LENGTH) revert AppRegistryInvalidCid(cid);
    }
}
