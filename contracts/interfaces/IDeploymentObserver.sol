// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title IDeploymentObserver
/// @notice Told by the AppRegistry about each new deployment, so it can set up its bookkeeping then,
/// at the app owner's expense, rather than in the first claim.
interface IDeploymentObserver {
    /// @notice A deployment was created. Only the AppRegistry may call this.
    /// @param deploymentId The new deployment.
    function onDeploymentCreated(uint32 deploymentId) external;
}
