// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IDeploymentObserver} from "./IDeploymentObserver.sol";

/// @title IAppRegistry
/// @notice Applications, their immutable versions and their deployments.
/// @dev Ids are sequential and start at 1 (0 means none). A version is numbered per app from 1.
interface IAppRegistry {
    /// @notice The CPU and memory band of a version, as the manifest states it.
    /// @dev Claims reserve the minimum on the device; the worker's resource manager moves the live limit
    /// inside the band.
    struct ResourceBand {
        uint32 cpuMinMillicores;
        uint32 cpuMaxMillicores;
        uint32 memoryMinMiB;
        uint32 memoryMaxMiB;
    }

    /// @notice An application as returned by {app}.
    struct App {
        address owner;
        uint32 versionCount;
        string name;
    }

    /// @notice A published version as returned by {version}; `platforms[i]` runs `imageCids[i]`.
    struct Version {
        ResourceBand band;
        uint40 publishedAt;
        bool deprecated;
        string manifestCid;
        string[] platforms;
        string[] imageCids;
    }

    /// @notice A deployment as returned by {deployment}.
    /// @dev `generation` starts at 1 and grows by one on every roll and on stop; placements claimed in an
    /// older generation are superseded.
    struct Deployment {
        uint32 appId;
        uint32 version;
        uint32 generation;
        uint32 replicas;
        bool active;
        bytes8[] requiredLabels;
    }

    /// @notice The fields of a deployment that releases and views need, with the app's owner.
    struct DeploymentSummary {
        address owner;
        uint32 appId;
        uint32 version;
        uint32 generation;
        uint32 replicas;
        bool active;
    }

    /// @notice Everything a claim needs to know about a deployment for one platform, in one call.
    /// @dev The CIDs are not part of it: claims stay cheap, and workers have them from the deployment's
    /// {DeploymentCreated} or {DeploymentRolled} event.
    struct ClaimTerms {
        uint32 appId;
        uint32 version;
        uint32 generation;
        uint32 replicas;
        bool active;
        bool platformSupported;
        bool deprecated;
        ResourceBand band;
        bytes8[] requiredLabels;
    }

    // ---------------------------------------------------------------- errors

    /// @notice The app name is not a canonical slug: 1 to 64 bytes of `a-z`, `0-9` and `-`, starting with a
    /// letter and not ending with `-` (so case variants, homoglyphs and invisible characters cannot sit next
    /// to a real name).
    /// @param name The name given.
    error AppRegistryInvalidName(string name);

    /// @notice Another app already has this name.
    /// @param name The name given.
    /// @param appId The app that holds it.
    error AppRegistryNameTaken(string name, uint32 appId);

    /// @notice No app has this id.
    /// @param appId The id given.
    error AppRegistryUnknownApp(uint32 appId);

    /// @notice The caller does not own the app.
    /// @param appId The app.
    /// @param account The caller.
    error AppRegistryUnauthorizedAccount(uint32 appId, address account);

    /// @notice The new owner is the zero address.
    /// @param owner The address given.
    error AppRegistryInvalidOwner(address owner);

    /// @notice A CID is empty or longer than 128 bytes.
    /// @param cid The CID given.
    error AppRegistryInvalidCid(string cid);

    /// @notice The resource band is empty or inverted (each minimum must be > 0 and <= its maximum).
    error AppRegistryInvalidBand(
        uint32 cpuMinMillicores,
        uint32 cpuMaxMillicores,
        uint32 memoryMinMiB,
        uint32 memoryMaxMiB
    );

    /// @notice The platform and image lists differ in length, are empty, or exceed the limit.
    /// @param platforms The number of platforms given.
    /// @param imageCids The number of image CIDs given.
    /// @param max The largest number of platforms a version may have.
    error AppRegistryInvalidPlatformCount(uint256 platforms, uint256 imageCids, uint256 max);

    /// @notice A platform name is malformed (3 to 31 bytes with a `/`, e.g. `linux/amd64`).
    /// @param platform The platform given.
    error AppRegistryInvalidPlatform(string platform);

    /// @notice A platform is listed twice in one version.
    /// @param platform The repeated platform.
    error AppRegistryDuplicatePlatform(string platform);

    /// @notice The app has no such version.
    /// @param appId The app.
    /// @param version The version number given.
    error AppRegistryUnknownVersion(uint32 appId, uint32 version);

    /// @notice The version is deprecated: it cannot be deprecated again, deployed, rolled to or scaled up.
    /// @param appId The app.
    /// @param version The version.
    error AppRegistryVersionDeprecated(uint32 appId, uint32 version);

    /// @notice The replica count is zero (stop a deployment instead).
    /// @param replicas The count given.
    error AppRegistryInvalidReplicas(uint32 replicas);

    /// @notice The deployment already has this replica count.
    /// @param deploymentId The deployment.
    /// @param replicas The count it has.
    error AppRegistryReplicasUnchanged(uint32 deploymentId, uint32 replicas);

    /// @notice No deployment has this id.
    /// @param deploymentId The id given.
    error AppRegistryUnknownDeployment(uint32 deploymentId);

    /// @notice The deployment is stopped; a stopped deployment cannot change.
    /// @param deploymentId The deployment.
    error AppRegistryDeploymentStopped(uint32 deploymentId);

    /// @notice A roll must go to a newer version than the current one.
    /// @param deploymentId The deployment.
    /// @param current The version it runs.
    /// @param requested The version given.
    error AppRegistryVersionNotNewer(uint32 deploymentId, uint32 current, uint32 requested);

    /// @notice Only the account that deployed the registry may set its observer.
    /// @param account The caller.
    error AppRegistryNotDeployer(address account);

    /// @notice The observer is set once, and never to the zero address.
    /// @param observer The observer already set, or the zero address given.
    error AppRegistryInvalidObserver(address observer);

    /// @notice A content provider address is empty or longer than 256 bytes.
    /// @param provider The address given.
    error AppRegistryInvalidProvider(string provider);

    // ---------------------------------------------------------------- events

    /// @notice The observer told about new deployments (the PlacementRegistry) was set.
    /// @param observer The observer.
    event ObserverSet(address indexed observer);

    /// @notice An app was registered.
    /// @param appId The new app's id.
    /// @param owner Its owner (the caller).
    /// @param name Its unique name.
    event AppRegistered(uint32 indexed appId, address indexed owner, string name);

    /// @notice An app changed hands.
    /// @param appId The app.
    /// @param previousOwner The owner before.
    /// @param newOwner The owner now.
    event AppTransferred(uint32 indexed appId, address indexed previousOwner, address indexed newOwner);

    /// @notice A version was published; it never changes afterwards.
    /// @param appId The app.
    /// @param version The version number (1 for the first).
    /// @param manifestCid The manifest's CID.
    /// @param platforms The platforms it runs on; `platforms[i]` runs `imageCids[i]`.
    /// @param imageCids The image CID of each platform.
    /// @param band The CPU and memory band.
    event VersionPublished(
        uint32 indexed appId,
        uint32 indexed version,
        string manifestCid,
        string[] platforms,
        string[] imageCids,
        ResourceBand band
    );

    /// @notice A version was deprecated: no new deployment or roll may use it; running ones go on.
    /// @param appId The app.
    /// @param version The version.
    event VersionDeprecated(uint32 indexed appId, uint32 indexed version);

    /// @notice An IPFS node that holds a version's manifest and images (the publisher's node, or a
    /// pinning service) was announced; devices connect to it to fetch the version over bitswap.
    /// @dev Kept in the log only: a worker reads the announcements of the versions it runs.
    /// @param appId The app.
    /// @param version The version.
    /// @param provider The node's multiaddr with its peer id, e.g. `/ip4/192.0.2.1/tcp/4001/p2p/12D3KooW...`.
    event VersionProviderAnnounced(uint32 indexed appId, uint32 indexed version, string provider);

    /// @notice A deployment was created; devices may now claim its replicas.
    /// @dev Carries the whole version so that a worker can fetch and run a replica it claims without
    /// another read.
    /// @param deploymentId The new deployment's id.
    /// @param appId The app.
    /// @param version The version deployed.
    /// @param replicas The number of replicas asked for.
    /// @param generation The deployment generation (1).
    /// @param requiredLabels The labels a device must offer, as text.
    /// @param spec The version deployed: band, manifest CID, platforms and their image CIDs.
    event DeploymentCreated(
        uint32 indexed deploymentId,
        uint32 indexed appId,
        uint32 indexed version,
        uint32 replicas,
        uint32 generation,
        string[] requiredLabels,
        Version spec
    );

    /// @notice A deployment's replica count changed.
    /// @dev After a scale-down below the live count, no claim succeeds until releases bring the live count
    /// under the new count (see docs/contracts.md).
    /// @param deploymentId The deployment.
    /// @param appId The app.
    /// @param previousReplicas The count before.
    /// @param replicas The count now.
    event DeploymentScaled(
        uint32 indexed deploymentId,
        uint32 indexed appId,
        uint32 previousReplicas,
        uint32 replicas
    );

    /// @notice A deployment rolled to a newer version; its placements of older generations are superseded.
    /// @param deploymentId The deployment.
    /// @param appId The app.
    /// @param version The version now deployed.
    /// @param previousVersion The version before.
    /// @param generation The new generation.
    /// @param spec The version now deployed: band, manifest CID, platforms and their image CIDs.
    event DeploymentRolled(
        uint32 indexed deploymentId,
        uint32 indexed appId,
        uint32 indexed version,
        uint32 previousVersion,
        uint32 generation,
        Version spec
    );

    /// @notice A deployment stopped: all its placements are superseded and it takes no more claims.
    /// @param deploymentId The deployment.
    /// @param appId The app.
    /// @param generation The new (final) generation.
    event DeploymentStopped(uint32 indexed deploymentId, uint32 indexed appId, uint32 generation);

    // ---------------------------------------------------------------- functions

    /// @notice Sets, once, the observer told about each new deployment. Only the deployer.
    /// @param newObserver The PlacementRegistry.
    function setObserver(IDeploymentObserver newObserver) external;

    /// @notice The observer told about each new deployment, or the zero address.
    function observer() external view returns (IDeploymentObserver);

    /// @notice Registers an app owned by the caller.
    /// @param name A unique canonical slug: 1 to 64 bytes of `a-z0-9-`, starting with a letter, not ending
    /// with `-` (see AppRegistryInvalidName).
    /// @return appId The new app's id.
    function registerApp(string calldata name) external returns (uint32 appId);

    /// @notice Transfers an app, with its deployments, to a new owner. Only the owner.
    /// @param appId The app.
    /// @param newOwner The new owner, not zero.
    function transferApp(uint32 appId, address newOwner) external;

    /// @notice Publishes a new immutable version. Only the owner.
    /// @param appId The app.
    /// @param manifestCid The manifest's CID.
    /// @param platforms 1 to 8 distinct platforms, e.g. `linux/amd64`.
    /// @param imageCids The image CID of each platform, in the same order.
    /// @param band The CPU and memory band.
    /// @return versionNumber The new version's number.
    function publishVersion(
        uint32 appId,
        string calldata manifestCid,
        string[] calldata platforms,
        string[] calldata imageCids,
        ResourceBand calldata band
    ) external returns (uint32 versionNumber);

    /// @notice Deprecates a version. Only the owner.
    /// @param appId The app.
    /// @param versionNumber The version.
    function deprecateVersion(uint32 appId, uint32 versionNumber) external;

    /// @notice Announces an IPFS node that provides a version's content (`app:publish` announces
    /// the publisher's node). Only the owner; any number of times (a second node, a new address).
    /// @param appId The app.
    /// @param versionNumber The version (published; deprecated ones too: running replicas still fetch).
    /// @param provider The node's multiaddr with its peer id, 1 to 256 bytes.
    function announceProvider(uint32 appId, uint32 versionNumber, string calldata provider) external;

    /// @notice Creates a deployment of `replicas` replicas of a version. Only the app owner.
    /// @param appId The app.
    /// @param versionNumber A published, non-deprecated version.
    /// @param replicas At least 1.
    /// @param requiredLabels At most 8 distinct `key=value` labels a device must offer.
    /// @return deploymentId The new deployment's id.
    function createDeployment(
        uint32 appId,
        uint32 versionNumber,
        uint32 replicas,
        string[] calldata requiredLabels
    ) external returns (uint32 deploymentId);

    /// @notice Sets a deployment's replica count. Only the app owner.
    /// @param deploymentId The deployment.
    /// @param replicas The new count, at least 1 and different from the current one; no more than now if
    /// the deployed version is deprecated (AppRegistryVersionDeprecated).
    function scaleDeployment(uint32 deploymentId, uint32 replicas) external;

    /// @notice Rolls a deployment to a newer, non-deprecated version. Only the app owner.
    /// @param deploymentId The deployment.
    /// @param versionNumber The new version.
    function rollDeployment(uint32 deploymentId, uint32 versionNumber) external;

    /// @notice Stops a deployment for good. Only the app owner.
    /// @param deploymentId The deployment.
    function stopDeployment(uint32 deploymentId) external;

    /// @notice The app with this id.
    function app(uint32 appId) external view returns (App memory);

    /// @notice The id of the app with this name, or 0.
    function appIdOf(string calldata name) external view returns (uint32);

    /// @notice The owner of an app (reverts for an unknown app).
    function appOwner(uint32 appId) external view returns (address);

    /// @notice A published version.
    function version(uint32 appId, uint32 versionNumber) external view returns (Version memory);

    /// @notice The image CID of a version for one platform, or "" when it has none.
    function imageOf(
        uint32 appId,
        uint32 versionNumber,
        string calldata platform
    ) external view returns (string memory);

    /// @notice A deployment.
    function deployment(uint32 deploymentId) external view returns (Deployment memory);

    /// @notice A deployment's summary with its app's current owner (reverts if unknown).
    function deploymentSummary(uint32 deploymentId) external view returns (DeploymentSummary memory);

    /// @notice The resource band of the version a deployment ran in one of its generations.
    /// @dev Reverts with {AppRegistryUnknownVersion} for a generation the deployment never had.
    function bandAt(uint32 deploymentId, uint32 generation) external view returns (ResourceBand memory);

    /// @notice The version a deployment ran in one of its generations, or 0 for an unknown generation.
    function deploymentVersionAt(uint32 deploymentId, uint32 generation) external view returns (uint32);

    /// @notice The terms of a deployment for a device of one platform (see {ClaimTerms}).
    /// @param deploymentId The deployment (reverts if unknown).
    /// @param platformKey keccak256 of the device's platform name.
    function claimTerms(uint32 deploymentId, bytes32 platformKey) external view returns (ClaimTerms memory);

    /// @notice The number of apps registered.
    function appCount() external view returns (uint32);

    /// @notice The number of deployments created.
    function deploymentCount() external view returns (uint32);
}
