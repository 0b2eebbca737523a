// SPDX-License-Identifier: MIT
pragma solidity =0.8.30;

/// @title WardenToken: a test ERC-20 with ERC-2612 permit
/// @notice Warden's guardrail tests and demo need a real token on a dev chain: balances that move,
///         allowances a router can spend, and a permit whose EIP-712 signature the chain checks.
///         Anyone may mint: it is a test token and must never be deployed where value is at stake.
/// @dev An allowance of type(uint256).max is "unlimited": transferFrom does not decrease it, as most
///      deployed tokens do, so guardrail tests see the same thing they would see on mainnet.
contract WardenToken {
    /// keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)")
    bytes32 public constant PERMIT_TYPEHASH =
        keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)");
    bytes32 private constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    /// secp256k1n / 2: a signature with a larger s is the malleable twin of a valid one (EIP-2).
    uint256 private constant HALF_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    string public name;
    string public symbol;
    uint8 public immutable decimals;
    uint256 public totalSupply;
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;
    /// The next permit nonce of each owner: a signed permit is good exactly once.
    mapping(address => uint256) public nonces;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    constructor(string memory name_, string memory symbol_, uint8 decimals_) {
        name = name_;
        symbol = symbol_;
        decimals = decimals_;
    }

    /// The EIP-712 domain separator: name, version "1", this chain, this contract. Computed on
    /// every call so that it stays right on a fork with another chain id.
    function DOMAIN_SEPARATOR() public view returns (bytes32) {
        return keccak256(
            abi.encode(DOMAIN_TYPEHASH, keccak256(bytes(name)), keccak256(bytes("1")), block.chainid, address(this))
        );
    }

    /// Anyone may mint any amount to anyone: test set-up, not economics.
    function mint(address to, uint256 amount) external {
        require(to != address(0), "WardenToken: mint to the zero address");
        totalSupply += amount;
        balanceOf[to] += amount;
        emit Transfer(address(0), to, amount);
    }

    function transfer(address to, uint256 amount) public virtual returns (bool) {
        _transfer(msg.sender, to, amount);
        return true;
    }

    function transferFrom(address from, address to, uint256 amount) public virtual returns (bool) {
        uint256 allowed = allowance[from][msg.sender];
        if (allowed != type(uint256).max) {
            require(allowed >= amount, "WardenToken: insufficient allowance");
            _approve(from, msg.sender, allowed - amount);
        }
        _transfer(from, to, amount);
        return true;
    }

    function approve(address spender, uint256 amount) external returns (bool) {
        _approve(msg.sender, spender, amount);
        return true;
    }

    function increaseAllowance(address spender, uint256 added) external returns (bool) {
        _approve(msg.sender, spender, allowance[msg.sender][spender] + added);
        return true;
    }

    /// ERC-2612: set `owner`'s allowance for `spender` from `owner`'s EIP-712 signature, sent by anyone.
    function permit(address owner, address spender, uint256 value, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external
    {
        require(block.timestamp <= deadline, "WardenToken: permit expired");
        require(uint256(s) <= HALF_ORDER, "WardenToken: signature s is in the upper half (EIP-2)");
        bytes32 structHash = keccak256(abi.encode(PERMIT_TYPEHASH, owner, spender, value, nonces[owner]++, deadline));
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", DOMAIN_SEPARATOR(), structHash));
        address signer = ecrecover(digest, v, r, s);
        // ecrecover returns the zero address for a signature that recovers to no key: never an owner.
        require(signer != address(0) && signer == owner, "WardenToken: invalid permit signature");
        _approve(owner, spender, value);
    }

    function _approve(address owner, address spender, uint256 amount) internal {
        require(spender != address(0), "WardenToken: approve to the zero address");
        allowance[owner][spender] = amount;
        emit Approval(owner, spender, amount);
    }

    function _transfer(address from, address to, uint256 amount) internal {
        require(to != address(0), "WardenToken: transfer to the zero address");
        uint256 balance = balanceOf[from];
        require(balance >= amount, "WardenToken: transfer amount exceeds balance");
        unchecked {
            balanceOf[from] = balance - amount;
        }
        balanceOf[to] += amount;
        emit Transfer(from, to, amount);
    }
}
