// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title IDeploymentObserver
/// @notice Told by the AppRegistry about each new deployment, so it can set up its bookkeeping then,
/// at the app owner's expense, rather than in the first claim; and about each roll or stop, so that a
/// confirm can tell a superseded placement from one slot of its own.
interface IDeploymentObserver {
    /// @notice A deployment was created. Only the AppRegistry may call this.
    /// @param deploymentId The new deployment.
    function onDeploymentCreated(uint32 deploymentId) external;

    /// @notice A deployment rolled or stopped: its generation moved on. Only the AppRegistry may call this.
    /// @param deploymentId The deployment.
    /// @param generation Its new generation.
    function onDeploymentGenerationChanged(uint32 deploymentId, uint32 generation) external;
}
