// SPDX-License-Identifier: MIT
pragma solidity =0.8.30;

/// @title Answer42: a contract that answers every call with 42
/// @notice Every call, whatever its calldata or value, returns abi.encode(uint256(42)): code with an
///         observable effect for the demo's EIP-7702 delegation, where the agent's account runs it.
contract Answer42 {
    fallback(bytes calldata) external payable returns (bytes memory) {
        return abi.encode(uint256(42));
    }
}
