// SPDX-License-Identifier: Apache-2.0
// Tiny contracts for chainsleuth's conversion decoding tests: a V2-style pair and factory
// emitting the real Uniswap V2 Swap/Sync/PairCreated events, a two-hop router, and a
// lock/release bridge emitting Locked. Test-only: no fees, no invariant checks.
pragma solidity ^0.8.20;

/// ERC-20 with approve/transferFrom (the router pulls the input from the trader).
contract FlowToken {
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;
    event Transfer(address indexed from, address indexed to, uint256 value);

    constructor(uint256 supply) {
        balanceOf[msg.sender] = supply;
        emit Transfer(address(0), msg.sender, supply);
    }

    function approve(address spender, uint256 value) external returns (bool) {
        allowance[msg.sender][spender] = value;
        return true;
    }

    function transfer(address to, uint256 value) external returns (bool) {
        _move(msg.sender, to, value);
        return true;
    }

    function transferFrom(address from, address to, uint256 value) external returns (bool) {
        require(allowance[from][msg.sender] >= value, "allowance");
        allowance[from][msg.sender] -= value;
        _move(from, to, value);
        return true;
    }

    function _move(address from, address to, uint256 value) internal {
        require(balanceOf[from] >= value, "balance");
        balanceOf[from] -= value;
        balanceOf[to] += value;
        emit Transfer(from, to, value);
    }
}

/// Uniswap-V2-shaped pair: pays out first, measures what came in, emits Sync then Swap.
contract MiniV2Pair {
    address public token0;
    address public token1;
    uint112 private reserve0;
    uint112 private reserve1;
    event Sync(uint112 reserve0, uint112 reserve1);
    event Swap(address indexed sender, uint256 amount0In, uint256 amount1In,
               uint256 amount0Out, uint256 amount1Out, address indexed to);

    constructor(address a, address b) {
        (token0, token1) = a < b ? (a, b) : (b, a);
    }

    function sync() external {
        _update();
    }

    function swap(uint256 amount0Out, uint256 amount1Out, address to) external {
        if (amount0Out > 0) FlowToken(token0).transfer(to, amount0Out);
        if (amount1Out > 0) FlowToken(token1).transfer(to, amount1Out);
        uint256 b0 = FlowToken(token0).balanceOf(address(this));
        uint256 b1 = FlowToken(token1).balanceOf(address(this));
        uint256 in0 = b0 > reserve0 - amount0Out ? b0 - (reserve0 - amount0Out) : 0;
        uint256 in1 = b1 > reserve1 - amount1Out ? b1 - (reserve1 - amount1Out) : 0;
        _update();
        emit Swap(msg.sender, in0, in1, amount0Out, amount1Out, to);
    }

    function _update() internal {
        reserve0 = uint112(FlowToken(token0).balanceOf(address(this)));
        reserve1 = uint112(FlowToken(token1).balanceOf(address(this)));
        emit Sync(reserve0, reserve1);
    }
}

/// Creates pairs and announces them with the real V2 PairCreated event.
contract MiniV2Factory {
    address[] public allPairs;
    event PairCreated(address indexed token0, address indexed token1, address pair, uint256);

    function createPair(address a, address b) external returns (address pair) {
        MiniV2Pair p = new MiniV2Pair(a, b);
        pair = address(p);
        allPairs.push(pair);
        emit PairCreated(p.token0(), p.token1(), pair, allPairs.length);
    }
}

/// Two hops in one transaction, V2-router style: pulls tokenIn into pair1, pair1 pays pair2,
/// pair2 pays `to`. The caller gives the output amounts (no pricing here).
contract MiniRouter {
    function swap2(address tokenIn, uint256 amountIn, MiniV2Pair pair1, uint256 out1,
                   MiniV2Pair pair2, uint256 out2, address to) external {
        FlowToken(tokenIn).transferFrom(msg.sender, address(pair1), amountIn);
        address mid = pair1.token0() == tokenIn ? pair1.token1() : pair1.token0();
        if (pair1.token0() == tokenIn) pair1.swap(0, out1, address(pair2));
        else pair1.swap(out1, 0, address(pair2));
        if (pair2.token0() == mid) pair2.swap(0, out2, to);
        else pair2.swap(out2, 0, to);
    }
}

/// Lock/release bridge, EVM side: locks ETH and names the Bitcoin address to pay.
contract MiniBridge {
    uint256 public nonce;
    event Locked(address indexed from, bytes32 indexed depositId, uint256 amount, string btcAddress);

    function lock(string calldata btcAddress) external payable returns (bytes32 depositId) {
        depositId = keccak256(abi.encode(address(this), msg.sender, nonce++));
        emit Locked(msg.sender, depositId, msg.value, btcAddress);
    }
}
