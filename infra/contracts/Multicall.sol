// SPDX-License-Identifier: MIT
pragma solidity =0.8.30;

/// @title Multicall: runs a batch of calls, each from this contract
/// @notice One transaction to a multicall can do anything: every call comes from this contract, so a
///         token.transferFrom(agent, anyone, x) inside the batch spends an allowance the agent gave
///         the multicall, and value goes wherever a call sends it. Warden's tests use it to show that
///         the calldata of one allowlisted call can hide many movements that only simulation reveals.
contract Multicall {
    struct Call {
        address target;
        uint256 value;
        bytes data;
    }

    /// Run `calls` in order, each with its `value` (which must add up to msg.value); return what each
    /// returned. A failing call reverts the batch with that call's own revert data.
    function aggregate(Call[] calldata calls) external payable returns (bytes[] memory results) {
        results = new bytes[](calls.length);
        uint256 spent;
        for (uint256 i = 0; i < calls.length; i++) {
            spent += calls[i].value;
            (bool ok, bytes memory returned) = calls[i].target.call{value: calls[i].value}(calls[i].data);
            if (!ok) {
                if (returned.length == 0) revert("Multicall: a call reverted without a reason");
                assembly ("memory-safe") {
                    revert(add(returned, 32), mload(returned))
                }
            }
            results[i] = returned;
        }
        require(spent == msg.value, "Multicall: the calls' values do not add up to msg.value");
    }
}
