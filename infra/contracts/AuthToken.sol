// SPDX-License-Identifier: MIT
pragma solidity =0.8.30;

import "./WardenToken.sol";

/// @title AuthToken: WardenToken with EIP-3009 transfer authorizations, as USDC has them
/// @notice An EIP-3009 authorization is an EIP-712 message that moves tokens when anyone submits it,
///         with no transaction from the holder: signing one is spending. Warden must decode it as
///         such, and its tests need a real token that executes it as USDC's FiatTokenV2 does (same
///         functions, type hashes, timing checks, one-use random nonces and signature rules).
///         The EIP-712 domain is WardenToken's: the constructor's name, version "1", chain, contract.
/// @dev cancelAuthorization is left out: it moves nothing. Anyone may mint (WardenToken): test only.
contract AuthToken is WardenToken {
    bytes32 public constant TRANSFER_WITH_AUTHORIZATION_TYPEHASH = keccak256(
        "TransferWithAuthorization(address from,address to,uint256 value,"
        "uint256 validAfter,uint256 validBefore,bytes32 nonce)"
    );
    bytes32 public constant RECEIVE_WITH_AUTHORIZATION_TYPEHASH = keccak256(
        "ReceiveWithAuthorization(address from,address to,uint256 value,"
        "uint256 validAfter,uint256 validBefore,bytes32 nonce)"
    );
    /// secp256k1n / 2 (EIP-2), as in WardenToken.
    uint256 private constant HALF_S = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;

    /// authorizer => nonce => used: each authorization nonce works once.
    mapping(address => mapping(bytes32 => bool)) private _authorizationStates;

    event AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce);

    constructor(string memory name_, string memory symbol_, uint8 decimals_) WardenToken(name_, symbol_, decimals_) {}

    /// Whether `authorizer` has used `nonce` already.
    function authorizationState(address authorizer, bytes32 nonce) external view returns (bool) {
        return _authorizationStates[authorizer][nonce];
    }

    /// Move `value` from `from` to `to` on `from`'s signed TransferWithAuthorization; anyone may submit it.
    function transferWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external {
        _authorized(TRANSFER_WITH_AUTHORIZATION_TYPEHASH, from, to, value, validAfter, validBefore, nonce, v, r, s);
    }

    /// As transferWithAuthorization, for a ReceiveWithAuthorization that only the payee `to` may submit
    /// (so nobody can front-run a deposit call that wraps it).
    function receiveWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external {
        require(to == msg.sender, "AuthToken: caller must be the payee");
        _authorized(RECEIVE_WITH_AUTHORIZATION_TYPEHASH, from, to, value, validAfter, validBefore, nonce, v, r, s);
    }

    function _authorized(
        bytes32 typeHash,
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) private {
        require(block.timestamp > validAfter, "AuthToken: authorization is not yet valid");
        require(block.timestamp < validBefore, "AuthToken: authorization is expired");
        require(!_authorizationStates[from][nonce], "AuthToken: authorization is used");
        bytes32 structHash = keccak256(abi.encode(typeHash, from, to, value, validAfter, validBefore, nonce));
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", DOMAIN_SEPARATOR(), structHash));
        require(uint256(s) <= HALF_S, "AuthToken: signature s is in the upper half (EIP-2)");
        require(v == 27 || v == 28, "AuthToken: signature v is not 27 or 28");
        address signer = ecrecover(digest, v, r, s);
        require(signer != address(0) && signer == from, "AuthToken: invalid signature");
        _authorizationStates[from][nonce] = true;
        emit AuthorizationUsed(from, nonce);
        _transfer(from, to, value);
    }
}
