// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title IResourceLog
/// @notice Anchors each device's resource-manager decision log on chain, one epoch at a time.
/// @dev A device's decisions form a hash chain off chain (every record carries its `seq`, the hash of the
/// record before it and its own hash; docs/resource-manager.md). At the end of an epoch the device's
/// operator stores the epoch's records in IPFS and calls {anchor} with the epoch's first seq, its count,
/// the hash of its last record and the CID. The contract keeps one slot per device (the epoch count, the
/// next seq and the first 20 bytes of the last hash) and checks that epochs and seqs are consecutive;
/// the full last hash and the CID live in {ResourceLogAnchored}, which auditors read.
interface IResourceLog {
    /// @notice A device's head: what its next anchor must continue.
    /// @param epochs Epochs anchored so far (the next epoch's index).
    /// @param nextSeq The seq the next epoch must start at.
    /// @param lastHashPrefix The first 20 bytes of the last anchored record's hash (zero before the first).
    struct Head {
        uint32 epochs;
        uint64 nextSeq;
        bytes20 lastHashPrefix;
    }

    // ---------------------------------------------------------------- errors

    /// @notice `account` is neither the operator nor the owner of `deviceId` in the DeviceRegistry.
    /// @param deviceId The device whose log was to be anchored.
    /// @param account The caller.
    error ResourceLogUnauthorizedAccount(uint32 deviceId, address account);

    /// @notice The epoch is not the device's next one.
    /// @param deviceId The device.
    /// @param epoch The epoch index given.
    /// @param expected The device's next epoch index.
    error ResourceLogEpochNotNext(uint32 deviceId, uint32 epoch, uint32 expected);

    /// @notice The epoch does not start where the previous one ended.
    /// @param deviceId The device.
    /// @param firstSeq The first seq given.
    /// @param expected The device's next seq.
    error ResourceLogSeqNotNext(uint32 deviceId, uint64 firstSeq, uint64 expected);

    /// @notice An epoch holds at least one record.
    /// @param deviceId The device.
    /// @param epoch The epoch index given.
    error ResourceLogEmptyEpoch(uint32 deviceId, uint32 epoch);

    /// @notice The last hash is zero (the hash of no record).
    /// @param deviceId The device.
    /// @param epoch The epoch index given.
    error ResourceLogZeroHash(uint32 deviceId, uint32 epoch);

    /// @notice The CID is empty or longer than 128 bytes.
    /// @param deviceId The device.
    /// @param cid The CID given.
    error ResourceLogInvalidCid(uint32 deviceId, string cid);

    // ---------------------------------------------------------------- events

    /// @notice An epoch of a device's resource log was anchored.
    /// @param deviceId The device.
    /// @param epoch The epoch's index (0, 1, 2, ... per device).
    /// @param firstSeq The seq of the epoch's first record.
    /// @param count How many records the epoch holds (seqs firstSeq .. firstSeq + count - 1).
    /// @param lastHash The hash of the epoch's last record (it commits to every record before it).
    /// @param cid The IPFS CID of the epoch's records (JSON, docs/resource-manager.md).
    /// @param operator The account that anchored it.
    event ResourceLogAnchored(
        uint32 indexed deviceId,
        uint32 indexed epoch,
        uint64 firstSeq,
        uint32 count,
        bytes32 lastHash,
        string cid,
        address indexed operator
    );

    // ---------------------------------------------------------------- functions

    /// @notice Anchors the next epoch of `deviceId`'s resource log.
    /// @dev Only the device's operator or owner. `epoch` must be the device's next epoch and `firstSeq` its
    /// next seq; `count` > 0; `lastHash` non-zero; `cid` 1 to 128 bytes. One storage slot written.
    /// @param deviceId The device.
    /// @param epoch The epoch's index.
    /// @param firstSeq The seq of the epoch's first record.
    /// @param count How many records the epoch holds.
    /// @param lastHash The hash of the epoch's last record.
    /// @param cid The IPFS CID of the epoch's records.
    function anchor(
        uint32 deviceId,
        uint32 epoch,
        uint64 firstSeq,
        uint32 count,
        bytes32 lastHash,
        string calldata cid
    ) external;

    /// @notice The device's head: epochs anchored, next seq, prefix of the last hash.
    /// @param deviceId The device.
    /// @return The head (all zero before the first anchor).
    function head(uint32 deviceId) external view returns (Head memory);

    /// @notice The DeviceRegistry that says who operates a device.
    /// @return The registry's address.
    function deviceRegistry() external view returns (address);
}
