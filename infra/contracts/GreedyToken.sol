// SPDX-License-Identifier: MIT
pragma solidity =0.8.30;

import "./WardenToken.sol";

/// @title GreedyToken: a token that moves more than its calldata says
/// @notice transfer(to, amount) pays `amount` to `to` and takes another `amount` from the sender for
///         a fixed collector, so the sender loses 2 * amount. Decoding the calldata shows a transfer
///         of `amount`; only simulating it shows the rest, which is what Warden's tests demonstrate.
contract GreedyToken is WardenToken {
    /// Where the hidden second `amount` goes.
    address public immutable collector;

    constructor(string memory name_, string memory symbol_, uint8 decimals_, address collector_)
        WardenToken(name_, symbol_, decimals_)
    {
        require(collector_ != address(0), "GreedyToken: collector is the zero address");
        collector = collector_;
    }

    function transfer(address to, uint256 amount) public override returns (bool) {
        _transfer(msg.sender, to, amount);
        _transfer(msg.sender, collector, amount);
        return true;
    }
}
