// SPDX-License-Identifier: Apache-2.0
// Tiny contracts for chainsleuth's Ethereum ingest tests (compiled with solc-js at test time).
pragma solidity ^0.8.20;

/// Minimal ERC-20: enough to emit real Transfer(address,address,uint256) logs.
contract TestToken {
    mapping(address => uint256) public balanceOf;
    event Transfer(address indexed from, address indexed to, uint256 value);

    constructor(uint256 supply) {
        balanceOf[msg.sender] = supply;
        emit Transfer(address(0), msg.sender, supply);
    }

    function transfer(address to, uint256 value) external returns (bool) {
        require(balanceOf[msg.sender] >= value, "balance");
        balanceOf[msg.sender] -= value;
        balanceOf[to] += value;
        emit Transfer(msg.sender, to, value);
        return true;
    }
}

/// Moves ETH with internal calls, so traces carry internal value transfers.
contract Forwarder {
    /// Splits msg.value equally over `to`; the remainder stays here.
    function forward(address payable[] calldata to) external payable {
        uint256 each = msg.value / to.length;
        for (uint256 i = 0; i < to.length; i++) {
            (bool ok, ) = to[i].call{value: each}("");
            require(ok, "send");
        }
    }

    /// The inner call forwards the value and then reverts: the transaction succeeds,
    /// the inner call and its (successful) child are undone, the value stays here.
    function tryForward(Reverter r, address payable to) external payable {
        try r.payAndRevert{value: msg.value}(to) {} catch {}
    }
}

contract Reverter {
    function payAndRevert(address payable to) external payable {
        (bool ok, ) = to.call{value: msg.value}("");
        require(ok, "send");
        revert("always");
    }

    function fail() external payable {
        revert("fail");
    }
}
