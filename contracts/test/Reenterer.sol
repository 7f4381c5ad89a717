// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

/// @title Reenterer: a test account that calls back into a target when it receives Ether
/// @notice Used by the contract tests to prove that no payout can be re-entered.
contract Reenterer {
    /// @notice The contract called by `execute` and re-entered by `receive`.
    address public immutable target;
    /// @notice Calldata sent back to `target` from `receive` (empty: accept silently).
    bytes public reentryData;
    /// @notice How many times `receive` tried to re-enter.
    uint256 public attempts;
    /// @notice Whether the last re-entry succeeded.
    bool public lastReentrySucceeded;
    /// @notice Revert data of the last re-entry.
    bytes public lastReentryError;
    /// @notice When set, `receive` refuses every payment.
    bool public rejectPayments;

    /// @param target_ The contract to call and re-enter.
    constructor(address target_) {
        target = target_;
    }

    /// @notice Sets the calldata `receive` sends back to `target`.
    /// @param data The calldata.
    function setReentry(bytes calldata data) external {
        reentryData = data;
    }

    /// @notice Makes `receive` refuse (or accept again) every payment.
    /// @param reject Whether to refuse.
    function setRejectPayments(bool reject) external {
        rejectPayments = reject;
    }

    /// @notice Calls `target` with `data` and `msg.value`, bubbling up its revert.
    /// @param data The calldata.
    /// @return The call's return data.
    function execute(bytes calldata data) external payable returns (bytes memory) {
        (bool ok, bytes memory ret) = target.call{value: msg.value}(data);
        if (!ok) {
            assembly {
                revert(add(ret, 32), mload(ret))
            }
        }
        return ret;
    }

    /// @notice Receives Ether and, once per payment, re-enters `target`.
    receive() external payable {
        require(!rejectPayments, "payment refused");
        if (reentryData.length == 0) return;
        attempts += 1;
        (bool ok, bytes memory ret) = target.call(reentryData);
        lastReentrySucceeded = ok;
        lastReentryError = ret;
    }
}
