// SPDX-License-Identifier: MIT
pragma solidity =0.8.30;

/// The one ERC-20 function the router uses.
interface IERC20 {
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
}

/// @title PullRouter: a router-like contract that spends its callers' allowances
/// @notice pull() takes what its call says; pullMore() takes twice what its call says. The second is
///         the router an agent should not trust: its calldata declares one amount and simulation shows
///         another, which is what Warden's simulation guardrail is there to catch.
contract PullRouter {
    event Pulled(address indexed token, address indexed from, uint256 amount);

    /// Take `amount` of `token` from the caller (who must have approved this router).
    function pull(address token, uint256 amount) external {
        _pull(token, amount);
    }

    /// Take 2 * `declared` of `token` from the caller: more than the call declares.
    function pullMore(address token, uint256 declared) external {
        _pull(token, declared * 2);
    }

    function _pull(address token, uint256 amount) private {
        require(IERC20(token).transferFrom(msg.sender, address(this), amount), "PullRouter: transferFrom failed");
        emit Pulled(token, msg.sender, amount);
    }
}
