// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title Labels
/// @notice Validation and hashing of `key=value` labels (devices offer them, deployments require them).
/// @dev A label is stored as its key: the first 8 bytes of keccak256 of its text
/// (ethers: `id(label).slice(0, 18)`). Four keys fit in one storage slot, which keeps enrollment (8 labels
/// in 2 slots) and claims cheap. 64 bits make an accidental collision of two real labels negligible; they do
/// not stop a device that grinds for a label it lacks, but nothing needs to: labels are self-declared, a
/// device may simply enroll with the label text itself.
/// Sets are small (at most {MAX_LABELS}), so the quadratic checks here are bounded by 8 x 8.
library Labels {
    /// @notice The largest number of labels a device offers or a deployment requires.
    uint256 internal constant MAX_LABELS = 8;
    /// @notice The longest label, in bytes.
    uint256 internal constant MAX_LABEL_LENGTH = 64;

    /// @notice More labels than allowed were given.
    /// @param count The number given.
    /// @param max The largest number allowed.
    error LabelsTooMany(uint256 count, uint256 max);

    /// @notice A label is not of the form `key=value` with a non-empty key and value, or is too long.
    /// @param label The offending label.
    error LabelsInvalid(string label);

    /// @notice The same label was given twice.
    /// @param label The repeated label.
    error LabelsDuplicate(string label);

    /// @notice Validates a set of labels and returns their keys, in the given order.
    /// @dev Reverts with {LabelsTooMany}, {LabelsInvalid} or {LabelsDuplicate}.
    function toKeys(string[] calldata labels) internal pure returns (bytes8[] memory keys) {
        uint256 n = labels.length;
        if (n > MAX_LABELS) revert LabelsTooMany(n, MAX_LABELS);
        keys = new bytes8[](n);
        for (uint256 i; i < n; ++i) {
            bytes calldata text = bytes(labels[i]);
            if (!_wellFormed(text)) revert LabelsInvalid(labels[i]);
            bytes8 k = bytes8(keccak256(text));
            for (uint256 j; j < i; ++j) {
                if (keys[j] == k) revert LabelsDuplicate(labels[i]);
            }
            keys[i] = k;
        }
    }

    /// @dev `key=value`: at most {MAX_LABEL_LENGTH} bytes, an `=` that is neither first nor last.
    function _wellFormed(bytes calldata text) private pure returns (bool) {
        uint256 n = text.length;
        if (n < 3 || n > MAX_LABEL_LENGTH) return false;
        for (uint256 i = 1; i < n - 1; ++i) {
            if (text[i] == "=") return true;
        }
        return false;
    }
}
