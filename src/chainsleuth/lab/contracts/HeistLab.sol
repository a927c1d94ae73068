// SPDX-License-Identifier: Apache-2.0
// Contracts of the chainsleuth heist lab (docs/lab.md). Small, readable stand-ins for the
// mainnet contracts a DPRK-style laundering run touches; each emits the same events as the
// contract it models so that the project's decoders read it like mainnet data.
pragma solidity ^0.8.20;

/// ERC-20 with an owner mint (stablecoins with 6 decimals like USDT/USDC).
contract LabToken {
    string public name;
    string public symbol;
    uint8 public immutable decimals;
    uint256 public totalSupply;
    address public immutable owner;
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    constructor(string memory name_, string memory symbol_, uint8 decimals_) {
        name = name_;
        symbol = symbol_;
        decimals = decimals_;
        owner = msg.sender;
    }

    function mint(address to, uint256 value) external {
        require(msg.sender == owner, "only owner");
        totalSupply += value;
        balanceOf[to] += value;
        emit Transfer(address(0), to, value);
    }

    function approve(address spender, uint256 value) external returns (bool) {
        allowance[msg.sender][spender] = value;
        emit Approval(msg.sender, spender, value);
        return true;
    }

    function transfer(address to, uint256 value) external returns (bool) {
        _move(msg.sender, to, value);
        return true;
    }

    function transferFrom(address from, address to, uint256 value) external returns (bool) {
        uint256 allowed = allowance[from][msg.sender];
        if (allowed != type(uint256).max) {
            require(allowed >= value, "allowance");
            allowance[from][msg.sender] = allowed - value;
        }
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

/// Wrapped ether with WETH9's events (Deposit/Withdrawal/Transfer/Approval).
contract WETH9 {
    string public name = "Wrapped Ether";
    string public symbol = "WETH";
    uint8 public decimals = 18;
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;

    event Approval(address indexed src, address indexed guy, uint256 wad);
    event Transfer(address indexed src, address indexed dst, uint256 wad);
    event Deposit(address indexed dst, uint256 wad);
    event Withdrawal(address indexed src, uint256 wad);

    receive() external payable {
        deposit();
    }

    function deposit() public payable {
        balanceOf[msg.sender] += msg.value;
        emit Deposit(msg.sender, msg.value);
    }

    function withdraw(uint256 wad) public {
        require(balanceOf[msg.sender] >= wad, "balance");
        balanceOf[msg.sender] -= wad;
        payable(msg.sender).transfer(wad);
        emit Withdrawal(msg.sender, wad);
    }

    function totalSupply() public view returns (uint256) {
        return address(this).balance;
    }

    function approve(address guy, uint256 wad) public returns (bool) {
        allowance[msg.sender][guy] = wad;
        emit Approval(msg.sender, guy, wad);
        return true;
    }

    function transfer(address dst, uint256 wad) public returns (bool) {
        return transferFrom(msg.sender, dst, wad);
    }

    function transferFrom(address src, address dst, uint256 wad) public returns (bool) {
        require(balanceOf[src] >= wad, "balance");
        if (src != msg.sender && allowance[src][msg.sender] != type(uint256).max) {
            require(allowance[src][msg.sender] >= wad, "allowance");
            allowance[src][msg.sender] -= wad;
        }
        balanceOf[src] -= wad;
        balanceOf[dst] += wad;
        emit Transfer(src, dst, wad);
        return true;
    }
}

interface IERC20Lab {
    function balanceOf(address) external view returns (uint256);
    function transfer(address, uint256) external returns (bool);
    function transferFrom(address, address, uint256) external returns (bool);
}

/// Uniswap V2 pair: constant product with a 0.3% fee, the V2 Mint/Swap/Sync events and
/// LP-token Transfers (v2-core UniswapV2Pair.sol, without TWAP oracle and protocol fee).
contract UniswapV2Pair {
    string public constant name = "Uniswap V2";
    string public constant symbol = "UNI-V2";
    uint8 public constant decimals = 18;
    uint256 public constant MINIMUM_LIQUIDITY = 10 ** 3;
    address public factory;
    address public token0;
    address public token1;
    uint112 private reserve0;
    uint112 private reserve1;
    uint256 public totalSupply;
    mapping(address => uint256) public balanceOf;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Mint(address indexed sender, uint256 amount0, uint256 amount1);
    event Swap(address indexed sender, uint256 amount0In, uint256 amount1In,
               uint256 amount0Out, uint256 amount1Out, address indexed to);
    event Sync(uint112 reserve0, uint112 reserve1);

    constructor() {
        factory = msg.sender;
    }

    function initialize(address _token0, address _token1) external {
        require(msg.sender == factory, "FORBIDDEN");
        token0 = _token0;
        token1 = _token1;
    }

    function getReserves() public view returns (uint112, uint112, uint32) {
        return (reserve0, reserve1, 0);
    }

    function _update(uint256 balance0, uint256 balance1) private {
        reserve0 = uint112(balance0);
        reserve1 = uint112(balance1);
        emit Sync(reserve0, reserve1);
    }

    function _mintLp(address to, uint256 value) private {
        totalSupply += value;
        balanceOf[to] += value;
        emit Transfer(address(0), to, value);
    }

    function mint(address to) external returns (uint256 liquidity) {
        uint256 balance0 = IERC20Lab(token0).balanceOf(address(this));
        uint256 balance1 = IERC20Lab(token1).balanceOf(address(this));
        uint256 amount0 = balance0 - reserve0;
        uint256 amount1 = balance1 - reserve1;
        if (totalSupply == 0) {
            liquidity = _sqrt(amount0 * amount1) - MINIMUM_LIQUIDITY;
            _mintLp(address(0xdead), MINIMUM_LIQUIDITY);
        } else {
            uint256 l0 = amount0 * totalSupply / reserve0;
            uint256 l1 = amount1 * totalSupply / reserve1;
            liquidity = l0 < l1 ? l0 : l1;
        }
        require(liquidity > 0, "INSUFFICIENT_LIQUIDITY_MINTED");
        _mintLp(to, liquidity);
        _update(balance0, balance1);
        emit Mint(msg.sender, amount0, amount1);
    }

    function swap(uint256 amount0Out, uint256 amount1Out, address to) external {
        require(amount0Out > 0 || amount1Out > 0, "INSUFFICIENT_OUTPUT_AMOUNT");
        (uint112 _reserve0, uint112 _reserve1,) = getReserves();
        require(amount0Out < _reserve0 && amount1Out < _reserve1, "INSUFFICIENT_LIQUIDITY");
        if (amount0Out > 0) require(IERC20Lab(token0).transfer(to, amount0Out), "TRANSFER_FAILED");
        if (amount1Out > 0) require(IERC20Lab(token1).transfer(to, amount1Out), "TRANSFER_FAILED");
        uint256 balance0 = IERC20Lab(token0).balanceOf(address(this));
        uint256 balance1 = IERC20Lab(token1).balanceOf(address(this));
        uint256 amount0In = balance0 > _reserve0 - amount0Out ? balance0 - (_reserve0 - amount0Out) : 0;
        uint256 amount1In = balance1 > _reserve1 - amount1Out ? balance1 - (_reserve1 - amount1Out) : 0;
        require(amount0In > 0 || amount1In > 0, "INSUFFICIENT_INPUT_AMOUNT");
        uint256 adjusted0 = balance0 * 1000 - amount0In * 3;
        uint256 adjusted1 = balance1 * 1000 - amount1In * 3;
        require(adjusted0 * adjusted1 >= uint256(_reserve0) * _reserve1 * 1000 ** 2, "K");
        _update(balance0, balance1);
        emit Swap(msg.sender, amount0In, amount1In, amount0Out, amount1Out, to);
    }

    function _sqrt(uint256 y) private pure returns (uint256 z) {
        if (y > 3) {
            z = y;
            uint256 x = y / 2 + 1;
            while (x < z) {
                z = x;
                x = (y / x + x) / 2;
            }
        } else if (y != 0) {
            z = 1;
        }
    }
}

/// Uniswap V2 factory: one pair per token pair, announced with PairCreated.
contract UniswapV2Factory {
    mapping(address => mapping(address => address)) public getPair;
    address[] public allPairs;

    event PairCreated(address indexed token0, address indexed token1, address pair, uint256);

    function allPairsLength() external view returns (uint256) {
        return allPairs.length;
    }

    function createPair(address tokenA, address tokenB) external returns (address pair) {
        require(tokenA != tokenB, "IDENTICAL_ADDRESSES");
        (address token0, address token1) = tokenA < tokenB ? (tokenA, tokenB) : (tokenB, tokenA);
        require(getPair[token0][token1] == address(0), "PAIR_EXISTS");
        pair = address(new UniswapV2Pair());
        UniswapV2Pair(pair).initialize(token0, token1);
        getPair[token0][token1] = pair;
        getPair[token1][token0] = pair;
        allPairs.push(pair);
        emit PairCreated(token0, token1, pair, allPairs.length);
    }
}

/// Uniswap V2 router (periphery UniswapV2Router02's swap paths, single- and multi-hop).
contract UniswapV2Router {
    address public immutable factory;
    address payable public immutable WETH;

    constructor(address factory_, address payable weth_) {
        factory = factory_;
        WETH = weth_;
    }

    receive() external payable {
        require(msg.sender == WETH, "only WETH");
    }

    function _pair(address a, address b) internal view returns (address p) {
        p = UniswapV2Factory(factory).getPair(a, b);
        require(p != address(0), "NO_PAIR");
    }

    function getAmountOut(uint256 amountIn, uint256 reserveIn, uint256 reserveOut) public pure returns (uint256) {
        uint256 amountInWithFee = amountIn * 997;
        return amountInWithFee * reserveOut / (reserveIn * 1000 + amountInWithFee);
    }

    function getAmountsOut(uint256 amountIn, address[] memory path) public view returns (uint256[] memory amounts) {
        require(path.length >= 2, "INVALID_PATH");
        amounts = new uint256[](path.length);
        amounts[0] = amountIn;
        for (uint256 i; i < path.length - 1; i++) {
            UniswapV2Pair p = UniswapV2Pair(_pair(path[i], path[i + 1]));
            (uint112 r0, uint112 r1,) = p.getReserves();
            (uint256 rIn, uint256 rOut) = path[i] == p.token0() ? (uint256(r0), uint256(r1)) : (uint256(r1), uint256(r0));
            amounts[i + 1] = getAmountOut(amounts[i], rIn, rOut);
        }
    }

    function _swap(uint256[] memory amounts, address[] memory path, address to) internal {
        for (uint256 i; i < path.length - 1; i++) {
            UniswapV2Pair p = UniswapV2Pair(_pair(path[i], path[i + 1]));
            uint256 out = amounts[i + 1];
            (uint256 a0, uint256 a1) = path[i] == p.token0() ? (uint256(0), out) : (out, uint256(0));
            address dest = i < path.length - 2 ? _pair(path[i + 1], path[i + 2]) : to;
            p.swap(a0, a1, dest);
        }
    }

    function addLiquidity(address tokenA, address tokenB, uint256 amountA, uint256 amountB, address to)
        external returns (uint256 liquidity)
    {
        address p = UniswapV2Factory(factory).getPair(tokenA, tokenB);
        if (p == address(0)) p = UniswapV2Factory(factory).createPair(tokenA, tokenB);
        require(IERC20Lab(tokenA).transferFrom(msg.sender, p, amountA), "TF");
        require(IERC20Lab(tokenB).transferFrom(msg.sender, p, amountB), "TF");
        liquidity = UniswapV2Pair(p).mint(to);
    }

    function addLiquidityETH(address token, uint256 amountToken, address to) external payable returns (uint256 liquidity) {
        address p = UniswapV2Factory(factory).getPair(token, WETH);
        if (p == address(0)) p = UniswapV2Factory(factory).createPair(token, WETH);
        require(IERC20Lab(token).transferFrom(msg.sender, p, amountToken), "TF");
        WETH9(WETH).deposit{value: msg.value}();
        require(WETH9(WETH).transfer(p, msg.value), "TF");
        liquidity = UniswapV2Pair(p).mint(to);
    }

    function swapExactTokensForTokens(uint256 amountIn, uint256 amountOutMin, address[] calldata path, address to)
        external returns (uint256[] memory amounts)
    {
        amounts = getAmountsOut(amountIn, path);
        require(amounts[amounts.length - 1] >= amountOutMin, "INSUFFICIENT_OUTPUT_AMOUNT");
        require(IERC20Lab(path[0]).transferFrom(msg.sender, _pair(path[0], path[1]), amountIn), "TF");
        _swap(amounts, path, to);
    }

    function swapExactETHForTokens(uint256 amountOutMin, address[] calldata path, address to)
        external payable returns (uint256[] memory amounts)
    {
        require(path[0] == WETH, "INVALID_PATH");
        amounts = getAmountsOut(msg.value, path);
        require(amounts[amounts.length - 1] >= amountOutMin, "INSUFFICIENT_OUTPUT_AMOUNT");
        WETH9(WETH).deposit{value: amounts[0]}();
        require(WETH9(WETH).transfer(_pair(path[0], path[1]), amounts[0]), "TF");
        _swap(amounts, path, to);
    }

    function swapExactTokensForETH(uint256 amountIn, uint256 amountOutMin, address[] calldata path, address to)
        external returns (uint256[] memory amounts)
    {
        require(path[path.length - 1] == WETH, "INVALID_PATH");
        amounts = getAmountsOut(amountIn, path);
        uint256 out = amounts[amounts.length - 1];
        require(out >= amountOutMin, "INSUFFICIENT_OUTPUT_AMOUNT");
        require(IERC20Lab(path[0]).transferFrom(msg.sender, _pair(path[0], path[1]), amountIn), "TF");
        _swap(amounts, path, address(this));
        WETH9(WETH).withdraw(out);
        (bool ok,) = to.call{value: out}("");
        require(ok, "ETH_TRANSFER_FAILED");
    }
}

/// Fixed-denomination mixer with Tornado Cash's interface and events. Tornado proves in
/// zero knowledge that a withdrawal's nullifier belongs to some deposited commitment; here
/// the pool's operator checks the note off-chain instead (a trusted stand-in for the proof).
/// What matters for tracing is kept: the pool pays every withdrawal from its pooled balance
/// to a fresh address, and nothing on chain links a withdrawal to its deposit.
contract Mixer {
    uint256 public immutable denomination;
    address public immutable operator;
    uint32 public nextIndex;
    mapping(bytes32 => bool) public commitments;
    mapping(bytes32 => bool) public nullifierHashes;

    event Deposit(bytes32 indexed commitment, uint32 leafIndex, uint256 timestamp);
    event Withdrawal(address to, bytes32 nullifierHash, address indexed relayer, uint256 fee);

    constructor(uint256 denomination_, address operator_) {
        denomination = denomination_;
        operator = operator_;
    }

    function deposit(bytes32 commitment) external payable {
        require(!commitments[commitment], "The commitment has been submitted");
        require(msg.value == denomination, "Please send `mixDenomination` ETH along with transaction");
        commitments[commitment] = true;
        emit Deposit(commitment, nextIndex, block.timestamp);
        nextIndex += 1;
    }

    function withdraw(bytes32 nullifierHash, address payable recipient, address payable relayer, uint256 fee)
        external
    {
        require(msg.sender == operator, "proof check is the operator's");
        require(!nullifierHashes[nullifierHash], "The note has been already spent");
        require(fee <= denomination, "Fee exceeds transfer value");
        nullifierHashes[nullifierHash] = true;
        (bool ok,) = recipient.call{value: denomination - fee}("");
        require(ok, "payment to recipient failed");
        if (fee > 0) {
            (ok,) = relayer.call{value: fee}("");
            require(ok, "payment to relayer failed");
        }
        emit Withdrawal(recipient, nullifierHash, relayer, fee);
    }
}

/// Lock side of a lock/release bridge to Bitcoin. The relayer watches Locked and pays
/// btcAddress on the Bitcoin side with the deposit id in an OP_RETURN output
/// (chainsleuth.flows.decoders.bridges, definition heist_lab_btc).
contract LabBridge {
    address public immutable relayer;
    uint256 public nonce;

    event Locked(address indexed from, bytes32 indexed depositId, uint256 amount, string btcAddress);
    event Released(address indexed to, bytes32 indexed btcTxId, uint256 amount);

    constructor(address relayer_) {
        relayer = relayer_;
    }

    function lock(string calldata btcAddress) external payable returns (bytes32 depositId) {
        require(msg.value > 0, "nothing to lock");
        depositId = keccak256(abi.encode(block.chainid, address(this), nonce, msg.sender, msg.value));
        nonce += 1;
        emit Locked(msg.sender, depositId, msg.value, btcAddress);
    }

    function release(address payable to, bytes32 btcTxId, uint256 amount) external {
        require(msg.sender == relayer, "only relayer");
        (bool ok,) = to.call{value: amount}("");
        require(ok, "release failed");
        emit Released(to, btcTxId, amount);
    }
}
