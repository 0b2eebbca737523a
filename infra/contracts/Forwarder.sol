// SPDX-License-Identifier: MIT
pragma solidity =0.8.30;

/// The two ERC-20 functions the forwarder uses.
interface IERC20Moves {
    function transfer(address to, uint256 amount) external returns (bool);
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
}

/// @title Forwarder: a contract an admin might allowlist that pays whoever its caller names
/// @notice Allowlisting this contract's address allowlists everyone: each function sends the caller's
///         tokens or value on to any `to`, in one hop or two, and plain value goes to a beneficiary
///         fixed at deployment. Warden's tests use it to show that value routed through an allowlisted
///         contract must be judged by where it lands (simulation), not by the contract's address.
contract Forwarder {
    /// Where plain value sent to this contract (receive) goes.
    address payable public immutable beneficiary;

    /// `token` is the zero address for native value.
    event Forwarded(address indexed token, address indexed from, address indexed to, uint256 amount);

    constructor(address payable beneficiary_) {
        require(beneficiary_ != address(0), "Forwarder: beneficiary is the zero address");
        beneficiary = beneficiary_;
    }

    /// One hop: `amount` of `token` from the caller (who approved this contract) straight to `to`.
    function forward(address token, address to, uint256 amount) external {
        require(IERC20Moves(token).transferFrom(msg.sender, to, amount), "Forwarder: transferFrom failed");
        emit Forwarded(token, msg.sender, to, amount);
    }

    /// Two hops: `amount` of `token` from the caller to this contract, then from here to `to`.
    function forwardVia(address token, address to, uint256 amount) external {
        require(IERC20Moves(token).transferFrom(msg.sender, address(this), amount), "Forwarder: transferFrom failed");
        require(IERC20Moves(token).transfer(to, amount), "Forwarder: transfer failed");
        emit Forwarded(token, msg.sender, to, amount);
    }

    /// The value sent with this call, on to `to`.
    function forwardValue(address payable to) external payable {
        _pay(to, msg.value);
        emit Forwarded(address(0), msg.sender, to, msg.value);
    }

    /// Plain value sent here goes on to the beneficiary.
    receive() external payable {
        _pay(beneficiary, msg.value);
        emit Forwarded(address(0), msg.sender, beneficiary, msg.value);
    }

    /// Send `amount` to `to`; a refusal reverts with the recipient's own reason when it gives one.
    function _pay(address payable to, uint256 amount) private {
        (bool ok, bytes memory reason) = to.call{value: amount}("");
        if (!ok) {
            if (reason.length == 0) revert("Forwarder: value transfer failed");
            assembly ("memory-safe") {
                revert(add(reason, 32), mload(reason))
            }
        }
    }
}
