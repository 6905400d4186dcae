// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// @title ShoalToken
/// @notice The ERC-20 that devices stake, for local networks and tests. Any ERC-20 works with the
/// DeviceRegistry; this one adds a MINTER_ROLE so a devnet can fund its accounts.
contract ShoalToken is ERC20, ERC20Permit, AccessControl {
    /// @notice May mint.
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");

    /// @param admin Holds DEFAULT_ADMIN_ROLE and MINTER_ROLE.
    constructor(address admin) ERC20("Shoal", "SHOAL") ERC20Permit("Shoal") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(MINTER_ROLE, admin);
    }

    /// @notice Mints `amount` to `to`. MINTER_ROLE.
    /// @param to The recipient.
    /// @param amount The amount, in base units (18 decimals).
    function mint(address to, uint256 amount) external onlyRole(MINTER_ROLE) {
        _mint(to, amount);
    }
}
