// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title Platforms
/// @notice Platform names such as `linux/amd64` or `linux/arm64/v8`, and their keys.
/// @dev A platform is at most 31 bytes, so its text fits in one storage slot; its key is keccak256 of
/// the text (ethers: `id("linux/amd64")`).
library Platforms {
    /// @notice The longest platform name, in bytes.
    uint256 internal constant MAX_LENGTH = 31;

    /// @notice The key of a platform name.
    /// @param platform The platform, e.g. `linux/amd64`.
    /// @return keccak256 of the text.
    function key(string memory platform) internal pure returns (bytes32) {
        return keccak256(bytes(platform));
    }

    /// @notice Whether a platform name is well formed: 3 to 31 bytes, with a `/` neither first nor last.
    function isValid(string calldata platform) internal pure returns (bool) {
        bytes calldata text = bytes(platform);
        uint256 n = text.length;
        if (n < 3 || n > MAX_LENGTH) return false;
        for (uint256 i = 1; i < n - 1; ++i) {
            if (text[i] == "/") return true;
        }
        return false;
    }
}
