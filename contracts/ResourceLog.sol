// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IDeviceRegistry} from "./interfaces/IDeviceRegistry.sol";
import {IResourceLog} from "./interfaces/IResourceLog.sol";

/// @title ResourceLog
/// @notice Anchors each device's resource-decision log on chain, one epoch at a time (see {IResourceLog}).
/// @dev O(1): one external view call to the DeviceRegistry and one storage slot per anchor. No admin, no
/// pause: a device's log is its operator's own, and nothing here moves value.
contract ResourceLog is IResourceLog {
    /// @dev The largest CID accepted (a CIDv1 in base32 of a sha2-256 multihash is 59 bytes).
    uint256 private constant _MAX_CID_BYTES = 128;

    IDeviceRegistry private immutable _devices;

    mapping(uint32 deviceId => Head head) private _heads;

    /// @param devices_ The DeviceRegistry that says who operates a device.
    constructor(IDeviceRegistry devices_) {
        _devices = devices_;
    }

    /// @inheritdoc IResourceLog
    function anchor(
        uint32 deviceId,
        uint32 epoch,
        uint64 firstSeq,
        uint32 count,
        bytes32 lastHash,
        string calldata cid
    ) external {
        // Cheap checks of the arguments first, then the one external call, then the slot.
        if (count == 0) revert ResourceLogEmptyEpoch(deviceId, epoch);
        if (lastHash == bytes32(0)) revert ResourceLogZeroHash(deviceId, epoch);
        if (bytes(cid).length == 0 || bytes(cid).length > _MAX_CID_BYTES)
            revert ResourceLogInvalidCid(deviceId, cid);
        if (!_devices.isAuthorized(deviceId, msg.sender))
            revert ResourceLogUnauthorizedAccount(deviceId, msg.sender);
        Head memory h = _heads[deviceId];
        if (epoch != h.epochs) revert ResourceLogEpochNotNext(deviceId, epoch, h.epochs);
        if (firstSeq != h.nextSeq) revert ResourceLogSeqNotNext(deviceId, firstSeq, h.nextSeq);
        _heads[deviceId] = Head({
            epochs: epoch + 1,
            nextSeq: firstSeq + count,
            lastHashPrefix: bytes20(lastHash)
        });
        emit ResourceLogAnchored(deviceId, epoch, firstSeq, count, lastHash, cid, msg.sender);
    }

    /// @inheritdoc IResourceLog
    function head(uint32 deviceId) external view returns (Head memory) {
        return _heads[deviceId];
    }

    /// @inheritdoc IResourceLog
    function deviceRegistry() external view returns (address) {
        return address(_devices);
    }
}
