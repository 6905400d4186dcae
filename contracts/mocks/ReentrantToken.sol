// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";

/// @title ReentrantToken
/// @notice Test only: an ERC-20 whose transfers call back into a target once, to prove that the
/// registries' reentrancy guards hold against hostile tokens (ERC-777-like hooks).
contract ReentrantToken is ERC20 {
    address private _target;
    bytes private _payload;
    bool private _entered;

    constructor() ERC20("Reentrant", "RE") {}

    /// @notice Mints `amount` to `to`, for anyone.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }

    /// @notice Makes the next transfers call `target` with `payload`; the revert, if any, is bubbled up.
    function arm(address target, bytes calldata payload) external {
        _target = target;
        _payload = payload;
    }

    function _update(address from, address to, uint256 value) internal override {
        super._update(from, to, value);
        if (_target == address(0) || _entered) return;
        _entered = true;
        Address.functionCall(_target, _payload);
        _entered = false;
    }
}
