// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

/// @title ShoalTimelock
/// @notice OpenZeppelin's TimelockController, unchanged, under the project's name: it holds
/// DEFAULT_ADMIN_ROLE of the DeviceRegistry and the PlacementRegistry, so that every admin change
/// (parameters, claim deadline, treasury, role grants) is public for `minDelay` seconds before it applies.
contract ShoalTimelock is TimelockController {
    /// @param minDelay Seconds between scheduling and executing an operation.
    /// @param proposers May schedule and cancel.
    /// @param executors May execute ready operations; address(0) lets anyone.
    /// @param admin Optional extra admin of the timelock's own roles; address(0) for none.
    constructor(
        uint256 minDelay,
        address[] memory proposers,
        address[] memory executors,
        address admin
    ) TimelockController(minDelay, proposers, executors, admin) {}
}
