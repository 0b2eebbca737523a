// SPDX-License-Identifier: MIT
pragma solidity =0.8.30;

/// @title PriceFeed: a Chainlink-style price feed for the local chain
/// @notice Serves AggregatorV3Interface (decimals, description, version, latestRoundData,
///         getRoundData) from answers its deployer sets, each a new round stamped with the block's
///         time, or with a time given (to make a stale price on purpose). What Warden reads on a
///         real chain from a Chainlink aggregator; on Anvil, from this.
contract PriceFeed {
    struct Round {
        int256 answer;
        uint256 startedAt;
        uint256 updatedAt;
    }

    uint8 public immutable decimals;
    string public description;
    uint256 public constant version = 4;
    address public immutable owner;
    uint80 public latestRound;
    mapping(uint80 => Round) private rounds;

    constructor(uint8 decimals_, string memory description_, int256 answer) {
        decimals = decimals_;
        description = description_;
        owner = msg.sender;
        _set(answer, block.timestamp);
    }

    /// @notice A new round with ``answer``, updated now.
    function setAnswer(int256 answer) external {
        require(msg.sender == owner, "only the deployer sets answers");
        _set(answer, block.timestamp);
    }

    /// @notice A new round with ``answer``, updated at ``updatedAt`` (a time in the past makes it stale).
    function setAnswerAt(int256 answer, uint256 updatedAt) external {
        require(msg.sender == owner, "only the deployer sets answers");
        _set(answer, updatedAt);
    }

    function latestRoundData() external view returns (uint80, int256, uint256, uint256, uint80) {
        return getRoundData(latestRound);
    }

    function getRoundData(uint80 roundId) public view returns (uint80, int256, uint256, uint256, uint80) {
        Round memory round = rounds[roundId];
        require(round.updatedAt != 0, "no such round");
        return (roundId, round.answer, round.startedAt, round.updatedAt, roundId);
    }

    function _set(int256 answer, uint256 updatedAt) private {
        latestRound += 1;
        rounds[latestRound] = Round(answer, updatedAt, updatedAt);
    }
}
