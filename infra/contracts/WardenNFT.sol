// SPDX-License-Identifier: MIT
pragma solidity =0.8.30;

/// The callback a contract recipient answers to accept a safe transfer (ERC-721).
interface IERC721Receiver {
    function onERC721Received(address operator, address from, uint256 tokenId, bytes calldata data)
        external
        returns (bytes4);
}

/// @title WardenNFT: a minimal ERC-721 for tests
/// @notice Enough of ERC-721 for Warden's guardrail tests to see NFTs move and approvals (one token,
///         or all of an owner's tokens to an operator) granted. Anyone may mint: a test collection.
contract WardenNFT {
    mapping(uint256 => address) private _owners;
    mapping(address => uint256) private _balances;
    mapping(uint256 => address) private _tokenApprovals;
    mapping(address => mapping(address => bool)) private _operatorApprovals;

    event Transfer(address indexed from, address indexed to, uint256 indexed tokenId);
    event Approval(address indexed owner, address indexed approved, uint256 indexed tokenId);
    event ApprovalForAll(address indexed owner, address indexed operator, bool approved);

    /// Anyone may mint any unminted token id to anyone.
    function mint(address to, uint256 tokenId) external {
        require(to != address(0), "WardenNFT: mint to the zero address");
        require(_owners[tokenId] == address(0), "WardenNFT: token already minted");
        _balances[to] += 1;
        _owners[tokenId] = to;
        emit Transfer(address(0), to, tokenId);
    }

    function ownerOf(uint256 tokenId) public view returns (address owner) {
        owner = _owners[tokenId];
        require(owner != address(0), "WardenNFT: token does not exist");
    }

    function balanceOf(address owner) external view returns (uint256) {
        require(owner != address(0), "WardenNFT: the zero address owns nothing");
        return _balances[owner];
    }

    function getApproved(uint256 tokenId) external view returns (address) {
        ownerOf(tokenId);
        return _tokenApprovals[tokenId];
    }

    function isApprovedForAll(address owner, address operator) public view returns (bool) {
        return _operatorApprovals[owner][operator];
    }

    function approve(address approved, uint256 tokenId) external {
        address owner = ownerOf(tokenId);
        require(msg.sender == owner || isApprovedForAll(owner, msg.sender), "WardenNFT: not owner nor operator");
        _tokenApprovals[tokenId] = approved;
        emit Approval(owner, approved, tokenId);
    }

    function setApprovalForAll(address operator, bool approved) external {
        _operatorApprovals[msg.sender][operator] = approved;
        emit ApprovalForAll(msg.sender, operator, approved);
    }

    function transferFrom(address from, address to, uint256 tokenId) public {
        address owner = ownerOf(tokenId);
        require(owner == from, "WardenNFT: from is not the owner");
        require(to != address(0), "WardenNFT: transfer to the zero address");
        require(
            msg.sender == owner || isApprovedForAll(owner, msg.sender) || msg.sender == _tokenApprovals[tokenId],
            "WardenNFT: caller is not owner nor approved"
        );
        delete _tokenApprovals[tokenId];
        _balances[from] -= 1;
        _balances[to] += 1;
        _owners[tokenId] = to;
        emit Transfer(from, to, tokenId);
    }

    function safeTransferFrom(address from, address to, uint256 tokenId) external {
        safeTransferFrom(from, to, tokenId, "");
    }

    /// As transferFrom, and a contract recipient must answer onERC721Received with its selector, so
    /// a token is never sent to a contract that cannot move it on.
    function safeTransferFrom(address from, address to, uint256 tokenId, bytes memory data) public {
        transferFrom(from, to, tokenId);
        if (to.code.length > 0) {
            bytes4 answer = IERC721Receiver(to).onERC721Received(msg.sender, from, tokenId, data);
            require(answer == IERC721Receiver.onERC721Received.selector, "WardenNFT: recipient refused the token");
        }
    }

    /// ERC-165: ERC-165 itself (0x01ffc9a7) and ERC-721 (0x80ac58cd).
    function supportsInterface(bytes4 interfaceId) external pure returns (bool) {
        return interfaceId == 0x01ffc9a7 || interfaceId == 0x80ac58cd;
    }
}
