// SPDX-License-Identifier: MIT
pragma solidity =0.8.30;

/// @title Paused: a contract that refuses everything
/// @notice Every call, with or without value or calldata, reverts with
///         Error("Warden demo: transfers paused"): the demo's and tests' stand-in for a paused token,
///         whose revert reason simulation must report.
contract Paused {
    fallback() external payable {
        revert("Warden demo: transfers paused");
    }

    receive() external payable {
        revert("Warden demo: transfers paused");
    }
}
