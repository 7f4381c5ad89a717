// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

/// @title JobManager: deposits, stakes, update commitments, verdicts and payouts of Funetun jobs
/// @notice A job owner locks a deposit; registered trainers commit the keccak256 hash of each
/// weight delta; registered validators vote; a quorum verdict pays the trainer the job's base
/// reward or slashes its stake; anyone may challenge an update during its window with a bond;
/// an unchallenged, unvoted update is accepted once its window closes. The job's leader (the
/// orchestrator) commits every round's checkpoint hash. All payouts are pull payments.
/// @dev Hot data is packed so that one accepted update (submit + one quorum vote + credit)
/// costs below 100k gas: an update is a single storage slot keyed by (job, round, trainer).
/// The update index is `round << 160 | trainer`, so the same (job, round, trainer) can never
/// hold two updates and the verdict knows whom to pay without another storage read.
/// Per job, `deposited + slashedIn == paid + reserved + remaining + withdrawn` at all times,
/// where `reserved` is the base reward held for every undecided update.
contract JobManager {
    // ------------------------------------------------------------------ constants

    /// @notice Job status: no such job.
    uint8 public constant JOB_NONE = 0;
    /// @notice Job status: accepts updates.
    uint8 public constant JOB_ACTIVE = 1;
    /// @notice Job status: accepts no new updates; pending ones are still decided.
    uint8 public constant JOB_CLOSED = 2;

    /// @notice Close reason: the owner withdrew the unused deposit.
    uint8 public constant CLOSED_BY_OWNER = 0;
    /// @notice Close reason: the deposit cannot cover another base reward.
    uint8 public constant CLOSED_EXHAUSTED = 1;
    /// @notice Close reason: the leader committed the final checkpoint.
    uint8 public constant CLOSED_FINISHED = 2;

    /// @notice Update status: no such update.
    uint8 public constant UPDATE_NONE = 0;
    /// @notice Update status: submitted, awaiting votes or the end of its window.
    uint8 public constant UPDATE_PENDING = 1;
    /// @notice Update status: challenged; only a quorum verdict decides it.
    uint8 public constant UPDATE_CHALLENGED = 2;
    /// @notice Update status: accepted and paid.
    uint8 public constant UPDATE_ACCEPTED = 3;
    /// @notice Update status: rejected; the trainer was slashed.
    uint8 public constant UPDATE_REJECTED = 4;
    /// @notice Update status: accepted, and the leader awarded the job's bonus.
    uint8 public constant UPDATE_BONUSED = 5;

    /// @notice Role bit of a trainer.
    uint8 public constant ROLE_TRAINER = 1;
    /// @notice Role bit of a validator.
    uint8 public constant ROLE_VALIDATOR = 2;

    /// @notice Largest quorum a job may ask for.
    uint8 public constant MAX_QUORUM = 15;

    uint256 private constant BPS = 10_000;
    uint256 private constant VALID_BIT = 1 << 160;

    // ----------------------------------------------------------------- parameters

    /// @notice Smallest stake that lets an account submit or vote.
    uint256 public immutable MIN_STAKE;
    /// @notice Seconds between `requestLeave()` and the stake becoming withdrawable.
    uint256 public immutable LEAVE_COOLDOWN;
    /// @notice Exact bond a challenger must attach.
    uint256 public immutable CHALLENGE_BOND;
    /// @notice Share of a trainer's stake slashed by a rejection, in basis points.
    uint256 public immutable TRAINER_SLASH_BPS;
    /// @notice Share of a slashed stake split among the validators who voted invalid, in basis points.
    uint256 public immutable VALIDATOR_SHARE_BPS;
    /// @notice Share of a validator's stake lost by voting against the final verdict, in basis points.
    uint256 public immutable VALIDATOR_PENALTY_BPS;

    // ---------------------------------------------------------------------- state

    /// @dev Fields read or written on every update, packed in one slot.
    struct JobCore {
        uint96 remaining; // unreserved deposit
        uint80 baseReward;
        uint32 challengeWindow; // seconds
        uint32 checkpoints; // number of checkpoints committed (rounds 0..checkpoints-1)
        uint8 quorum;
        uint8 status;
    }

    /// @dev Fields of a job that the hot path never touches.
    struct JobInfo {
        address owner;
        uint32 rounds;
        address leader;
        uint96 bonusReward;
        bytes32 specHash;
        uint128 deposited;
        uint128 slashedIn;
        uint128 withdrawn;
    }

    /// @dev One update in one slot: the first 24 bytes of its hash (the full hash is in
    /// `UpdateSubmitted`), the end of its challenge window, its status and vote counts.
    struct Update {
        bytes24 hashPrefix;
        uint40 deadline;
        uint8 status;
        uint8 validVotes;
        uint8 invalidVotes;
    }

    /// @dev A participant in one slot: stake, withdrawable credit, leave time, the number of
    /// its updates and stored votes awaiting a verdict, and its role bits.
    struct Account {
        uint96 stake;
        uint96 credit;
        uint40 unlockAt;
        uint16 pending;
        uint8 roles;
    }

    /// @notice A job as returned by `getJob`.
    struct JobView {
        address owner;
        address leader;
        bytes32 specHash;
        uint256 deposited;
        uint256 remaining;
        uint256 slashedIn;
        uint256 withdrawn;
        uint256 baseReward;
        uint256 bonusReward;
        uint32 rounds;
        uint32 checkpoints;
        uint32 challengeWindow;
        uint8 quorum;
        uint8 status;
    }

    /// @notice An update as returned by `getUpdate`.
    struct UpdateView {
        address trainer;
        uint64 round;
        bytes24 hashPrefix;
        uint64 deadline;
        uint8 status;
        uint8 validVotes;
        uint8 invalidVotes;
        address challenger;
    }

    /// @notice An account as returned by `getAccount`.
    struct AccountView {
        uint256 stake;
        uint256 credit;
        uint64 unlockAt;
        uint16 pending;
        uint8 roles;
    }

    /// @notice Number of jobs created; job ids run from 1 to `jobCount`.
    uint256 public jobCount;

    mapping(uint256 => JobCore) private _jobCore;
    mapping(uint256 => JobInfo) private _jobInfo;
    mapping(uint256 => mapping(uint256 => Update)) private _updates;
    mapping(uint256 => mapping(uint256 => uint256[])) private _votes;
    mapping(uint256 => mapping(uint256 => address)) private _challengers;
    mapping(address => Account) private _accounts;

    /// @notice Checkpoint hash of a job's round (round 0 is the initial model).
    mapping(uint256 => mapping(uint256 => bytes32)) public checkpointHash;

    uint256 private transient _locked;

    // --------------------------------------------------------------------- events

    /// @notice A job was created with `deposit` locked.
    event JobCreated(
        uint256 indexed jobId,
        address indexed owner,
        address indexed leader,
        bytes32 specHash,
        uint256 deposit,
        uint256 baseReward,
        uint256 bonusReward,
        uint32 rounds,
        uint8 quorum,
        uint32 challengeWindow
    );
    /// @notice A job stopped accepting updates (`reason` is one of the CLOSED_* constants).
    event JobClosed(uint256 indexed jobId, uint8 reason);
    /// @notice The owner took back `amount` of unused deposit.
    event FundsWithdrawn(uint256 indexed jobId, address indexed owner, uint256 amount);
    /// @notice The leader committed the checkpoint of `round`.
    event CheckpointCommitted(uint256 indexed jobId, uint256 indexed round, bytes32 checkpointHash);
    /// @notice An account registered in `role` (or topped up), adding `amount` to reach `stake`.
    event Registered(address indexed account, uint8 role, uint256 amount, uint256 stake);
    /// @notice An account left all roles; its stake unlocks at `unlockAt`.
    event LeaveRequested(address indexed account, uint64 unlockAt);
    /// @notice An account took back its stake.
    event StakeWithdrawn(address indexed account, uint256 amount);
    /// @notice A trainer committed an update; it can be challenged until `block.timestamp +
    /// challengeWindow`; its reward is reserved from the deposit. Index: `round << 160 | trainer`.
    event UpdateSubmitted(uint256 indexed jobId, address indexed trainer, uint256 round, bytes32 updateHash);
    /// @notice A validator's vote was recorded without reaching the quorum.
    event VoteCast(uint256 indexed jobId, uint256 indexed index, address indexed validator, bool valid);
    /// @notice An update was challenged with a bond.
    event Challenged(uint256 indexed jobId, uint256 indexed index, address indexed challenger, uint256 bond);
    /// @notice An update was decided. `decidedBy` cast the deciding vote (zero when finalized
    /// after an unchallenged window). When accepted, the trainer is credited the base reward
    /// (plus the bond of a failed challenge, announced by `Credited`).
    event UpdateDecided(uint256 indexed jobId, uint256 indexed index, address indexed decidedBy, bool accepted);
    /// @notice `amount` was taken from `account`'s stake over job `jobId`.
    event Slashed(address indexed account, uint256 indexed jobId, uint256 amount);
    /// @notice `amount` was credited to `account` (other than a base reward, see `UpdateDecided`).
    event Credited(address indexed account, uint256 indexed jobId, uint256 amount);
    /// @notice The leader awarded the job's bonus to an accepted update.
    event BonusAwarded(uint256 indexed jobId, uint256 indexed index, uint256 amount);
    /// @notice An account withdrew its credit.
    event Withdrawn(address indexed account, uint256 amount);

    // --------------------------------------------------------------------- errors

    /// @notice A constructor parameter is out of range.
    error InvalidParameter();
    /// @notice A hash argument was zero.
    error ZeroHash();
    /// @notice An address argument was zero.
    error ZeroAddress();
    /// @notice A job needs at least one round.
    error InvalidRounds();
    /// @notice Quorum must lie in 1..=MAX_QUORUM.
    error InvalidQuorum(uint8 quorum);
    /// @notice The base reward must be positive and fit in 80 bits.
    error InvalidReward();
    /// @notice The deposit must exceed the base reward.
    error DepositTooSmall(uint256 deposit, uint256 baseReward);
    /// @notice An amount does not fit the contract's packed fields.
    error AmountTooLarge();
    /// @notice No job with this id.
    error JobNotFound(uint256 jobId);
    /// @notice The job accepts no updates.
    error JobNotActive(uint256 jobId);
    /// @notice Only the job's owner may do this.
    error NotJobOwner(uint256 jobId);
    /// @notice Only the job's leader may do this.
    error NotLeader(uint256 jobId);
    /// @notice The round is not the one expected now.
    error WrongRound(uint256 expected, uint256 got);
    /// @notice The caller is not a registered trainer.
    error NotTrainer(address account);
    /// @notice The caller is not a registered validator.
    error NotValidator(address account);
    /// @notice The stake is below the minimum.
    error StakeTooLow(uint256 stake, uint256 minimum);
    /// @notice This (job, round, trainer) already holds an update.
    error AlreadySubmitted(uint256 jobId, uint256 index);
    /// @notice No update at this index.
    error UnknownUpdate(uint256 jobId, uint256 index);
    /// @notice The update was already decided.
    error AlreadyDecided(uint256 jobId, uint256 index);
    /// @notice A trainer may not vote on its own update.
    error SelfValidation();
    /// @notice This validator already voted on this update.
    error AlreadyVoted(address validator);
    /// @notice The update has votes or a challenge; only a quorum verdict decides it.
    error UnderReview(uint256 jobId, uint256 index);
    /// @notice The challenge window is still open.
    error WindowOpen(uint256 deadline);
    /// @notice The challenge window has closed.
    error WindowClosed(uint256 deadline);
    /// @notice The update is already challenged.
    error AlreadyChallenged(uint256 jobId, uint256 index);
    /// @notice The attached bond is not `CHALLENGE_BOND`.
    error WrongBond(uint256 expected, uint256 got);
    /// @notice The account has updates or votes awaiting a verdict.
    error PendingVerdicts(uint256 pending);
    /// @notice Too many undecided updates or votes for one account.
    error TooManyPending();
    /// @notice The account holds no role.
    error NotRegistered(address account);
    /// @notice The account is leaving; it cannot register again until it withdraws its stake.
    error Leaving(uint256 unlockAt);
    /// @notice The account has not called `requestLeave()`.
    error NotLeaving(address account);
    /// @notice The stake unlocks later.
    error StakeLocked(uint256 unlockAt);
    /// @notice There is nothing to withdraw.
    error NothingToWithdraw();
    /// @notice Sending Ether failed.
    error TransferFailed();
    /// @notice A guarded function was re-entered.
    error Reentrancy();
    /// @notice The update is not accepted without a bonus.
    error NotAccepted(uint256 jobId, uint256 index);
    /// @notice The job has no bonus reward.
    error NoBonus(uint256 jobId);
    /// @notice The job's unreserved deposit cannot pay this.
    error InsufficientDeposit(uint256 remaining, uint256 needed);

    // ------------------------------------------------------------------ modifiers

    modifier nonReentrant() {
        if (_locked != 0) revert Reentrancy();
        _locked = 1;
        _;
        _locked = 0;
    }

    /// @param minStake Smallest stake that lets an account submit or vote (positive).
    /// @param leaveCooldown Seconds between `requestLeave()` and the stake unlocking.
    /// @param challengeBond Exact bond of a challenge (positive).
    /// @param trainerSlashBps Share of a trainer's stake slashed by a rejection (1..=10000).
    /// @param validatorShareBps Share of a slash paid to the validators who voted invalid (<= 10000).
    /// @param validatorPenaltyBps Share of a validator's stake lost by voting against the verdict (<= 10000).
    constructor(
        uint256 minStake,
        uint256 leaveCooldown,
        uint256 challengeBond,
        uint256 trainerSlashBps,
        uint256 validatorShareBps,
        uint256 validatorPenaltyBps
    ) {
        if (
            minStake == 0 || minStake > type(uint96).max || challengeBond == 0 || challengeBond > type(uint96).max
                || trainerSlashBps == 0 || trainerSlashBps > BPS || validatorShareBps > BPS
                || validatorPenaltyBps > BPS || leaveCooldown > type(uint32).max
        ) revert InvalidParameter();
        MIN_STAKE = minStake;
        LEAVE_COOLDOWN = leaveCooldown;
        CHALLENGE_BOND = challengeBond;
        TRAINER_SLASH_BPS = trainerSlashBps;
        VALIDATOR_SHARE_BPS = validatorShareBps;
        VALIDATOR_PENALTY_BPS = validatorPenaltyBps;
    }

    // ----------------------------------------------------------------------- jobs

    /// @notice Creates a job and locks `msg.value` as its deposit.
    /// @param specHash keccak256 of the job spec blob.
    /// @param leader The orchestrator that commits the job's checkpoints.
    /// @param baseReward Paid per accepted update; the deposit must exceed it.
    /// @param bonusReward What the leader may award once per accepted update (0 for none).
    /// @param rounds Number of training rounds; checkpoint `rounds` is the final model.
    /// @param quorum Matching votes that decide an update (1..=MAX_QUORUM).
    /// @param challengeWindow Seconds after submission during which an update can be challenged.
    /// @return jobId The new job's id.
    function createJob(
        bytes32 specHash,
        address leader,
        uint256 baseReward,
        uint256 bonusReward,
        uint32 rounds,
        uint8 quorum,
        uint32 challengeWindow
    ) external payable returns (uint256 jobId) {
        if (specHash == bytes32(0)) revert ZeroHash();
        if (leader == address(0)) revert ZeroAddress();
        if (rounds == 0) revert InvalidRounds();
        if (quorum == 0 || quorum > MAX_QUORUM) revert InvalidQuorum(quorum);
        if (baseReward == 0 || baseReward > type(uint80).max) revert InvalidReward();
        if (msg.value <= baseReward) revert DepositTooSmall(msg.value, baseReward);
        if (msg.value > type(uint96).max || bonusReward > type(uint96).max) revert AmountTooLarge();

        jobId = ++jobCount;
        _jobCore[jobId] = JobCore({
            remaining: uint96(msg.value),
            baseReward: uint80(baseReward),
            challengeWindow: challengeWindow,
            checkpoints: 0,
            quorum: quorum,
            status: JOB_ACTIVE
        });
        _jobInfo[jobId] = JobInfo({
            owner: msg.sender,
            rounds: rounds,
            leader: leader,
            bonusReward: uint96(bonusReward),
            specHash: specHash,
            deposited: uint128(msg.value),
            slashedIn: 0,
            withdrawn: 0
        });
        emit JobCreated(
            jobId, msg.sender, leader, specHash, msg.value, baseReward, bonusReward, rounds, quorum, challengeWindow
        );
    }

    /// @notice Commits the checkpoint hash of `round`; rounds are committed in order from 0.
    /// Committing round `rounds` (the final model) closes the job.
    /// @param jobId The job.
    /// @param round Must equal the number of checkpoints committed so far.
    /// @param hash keccak256 of the checkpoint's canonical encoding.
    function commitCheckpoint(uint256 jobId, uint256 round, bytes32 hash) external {
        JobCore memory j = _jobCore[jobId];
        if (j.status == JOB_NONE) revert JobNotFound(jobId);
        JobInfo storage info = _jobInfo[jobId];
        if (msg.sender != info.leader) revert NotLeader(jobId);
        if (round != j.checkpoints || round > info.rounds) revert WrongRound(j.checkpoints, round);
        if (hash == bytes32(0)) revert ZeroHash();
        checkpointHash[jobId][round] = hash;
        j.checkpoints = uint32(round + 1);
        bool finished = round == info.rounds && j.status == JOB_ACTIVE;
        if (finished) j.status = JOB_CLOSED;
        _jobCore[jobId] = j;
        emit CheckpointCommitted(jobId, round, hash);
        if (finished) emit JobClosed(jobId, CLOSED_FINISHED);
    }

    /// @notice Closes the job (if still active) and sends its owner the unreserved deposit.
    /// May be called again later to collect rewards released by rejected updates.
    /// @param jobId The job.
    function withdrawUnusedFunds(uint256 jobId) external nonReentrant {
        JobCore memory j = _jobCore[jobId];
        if (j.status == JOB_NONE) revert JobNotFound(jobId);
        JobInfo storage info = _jobInfo[jobId];
        if (msg.sender != info.owner) revert NotJobOwner(jobId);
        uint256 amount = j.remaining;
        bool closing = j.status == JOB_ACTIVE;
        if (!closing && amount == 0) revert NothingToWithdraw();
        j.remaining = 0;
        if (closing) j.status = JOB_CLOSED;
        _jobCore[jobId] = j;
        info.withdrawn += uint128(amount);
        if (closing) emit JobClosed(jobId, CLOSED_BY_OWNER);
        emit FundsWithdrawn(jobId, msg.sender, amount);
        if (amount != 0) _send(msg.sender, amount);
    }

    // ------------------------------------------------------------------ accounts

    /// @notice Registers the caller as a trainer, adding `msg.value` to its stake.
    function registerTrainer() external payable {
        _register(ROLE_TRAINER);
    }

    /// @notice Registers the caller as a validator, adding `msg.value` to its stake.
    function registerValidator() external payable {
        _register(ROLE_VALIDATOR);
    }

    /// @notice Gives up every role; the stake unlocks after `LEAVE_COOLDOWN`. Refused while any
    /// of the caller's updates or stored votes awaits a verdict.
    function requestLeave() external {
        Account memory a = _accounts[msg.sender];
        if (a.roles == 0) revert NotRegistered(msg.sender);
        if (a.pending != 0) revert PendingVerdicts(a.pending);
        uint40 unlockAt = uint40(block.timestamp + LEAVE_COOLDOWN);
        a.unlockAt = unlockAt;
        a.roles = 0;
        _accounts[msg.sender] = a;
        emit LeaveRequested(msg.sender, unlockAt);
    }

    /// @notice Sends the caller its whole stake once its leave cooldown has passed.
    function withdrawStake() external nonReentrant {
        Account memory a = _accounts[msg.sender];
        if (a.unlockAt == 0) revert NotLeaving(msg.sender);
        if (block.timestamp < a.unlockAt) revert StakeLocked(a.unlockAt);
        uint256 amount = a.stake;
        a.stake = 0;
        a.unlockAt = 0;
        _accounts[msg.sender] = a;
        emit StakeWithdrawn(msg.sender, amount);
        if (amount != 0) _send(msg.sender, amount);
    }

    /// @notice Sends the caller all its credited payouts.
    function withdraw() external nonReentrant {
        Account storage a = _accounts[msg.sender];
        uint256 amount = a.credit;
        if (amount == 0) revert NothingToWithdraw();
        a.credit = 0;
        emit Withdrawn(msg.sender, amount);
        _send(msg.sender, amount);
    }

    // ------------------------------------------------------------------- updates

    /// @notice Commits the hash of the caller's weight delta for `round` of `jobId`, the round
    /// whose base checkpoint was committed last. Reserves the base reward from the deposit; a
    /// job whose deposit then cannot cover another reward closes itself.
    /// @param jobId The job.
    /// @param round The current round.
    /// @param updateHash keccak256 of the delta's canonical encoding.
    /// @return index The update index, `round << 160 | msg.sender`.
    function submitUpdate(uint256 jobId, uint256 round, bytes32 updateHash) external returns (uint256 index) {
        JobCore memory j = _jobCore[jobId];
        if (j.status != JOB_ACTIVE) {
            if (j.status == JOB_NONE) revert JobNotFound(jobId);
            revert JobNotActive(jobId);
        }
        if (j.checkpoints == 0 || round != j.checkpoints - 1) {
            revert WrongRound(j.checkpoints == 0 ? 0 : j.checkpoints - 1, round);
        }
        if (updateHash == bytes32(0)) revert ZeroHash();
        Account memory a = _accounts[msg.sender];
        if (a.roles & ROLE_TRAINER == 0) revert NotTrainer(msg.sender);
        if (a.stake < MIN_STAKE) revert StakeTooLow(a.stake, MIN_STAKE);
        if (a.pending == type(uint16).max) revert TooManyPending();
        index = (round << 160) | uint256(uint160(msg.sender));
        Update storage slot = _updates[jobId][index];
        if (slot.status != UPDATE_NONE) revert AlreadySubmitted(jobId, index);

        unchecked {
            // Active implies remaining >= baseReward.
            j.remaining -= j.baseReward;
            a.pending += 1;
        }
        bool exhausted = j.remaining < j.baseReward;
        if (exhausted) j.status = JOB_CLOSED;
        _jobCore[jobId] = j;
        _accounts[msg.sender] = a;
        _updates[jobId][index] = Update({
            hashPrefix: bytes24(updateHash),
            deadline: uint40(block.timestamp + j.challengeWindow),
            status: UPDATE_PENDING,
            validVotes: 0,
            invalidVotes: 0
        });
        emit UpdateSubmitted(jobId, msg.sender, round, updateHash);
        if (exhausted) emit JobClosed(jobId, CLOSED_EXHAUSTED);
    }

    /// @notice Votes on an update. The first side to reach the job's quorum decides it: valid
    /// credits the trainer the base reward; invalid slashes the trainer's stake. Validators
    /// whose stored vote disagrees with the verdict lose `VALIDATOR_PENALTY_BPS` of their stake.
    /// @param jobId The job.
    /// @param index The update index.
    /// @param valid The caller's verdict.
    function validateUpdate(uint256 jobId, uint256 index, bool valid) external {
        Update memory u = _updates[jobId][index];
        if (u.status == UPDATE_NONE) revert UnknownUpdate(jobId, index);
        if (u.status > UPDATE_CHALLENGED) revert AlreadyDecided(jobId, index);
        if (msg.sender == address(uint160(index))) revert SelfValidation();
        Account memory a = _accounts[msg.sender];
        if (a.roles & ROLE_VALIDATOR == 0) revert NotValidator(msg.sender);
        if (a.stake < MIN_STAKE) revert StakeTooLow(a.stake, MIN_STAKE);
        JobCore memory j = _jobCore[jobId];

        uint256 stored = uint256(u.validVotes) + u.invalidVotes;
        if (stored != 0) {
            uint256[] storage list = _votes[jobId][index];
            for (uint256 i = 0; i < stored; ++i) {
                if (address(uint160(list[i])) == msg.sender) revert AlreadyVoted(msg.sender);
            }
        }
        uint256 count = (valid ? u.validVotes : u.invalidVotes) + 1;
        if (count < j.quorum) {
            if (a.pending == type(uint16).max) revert TooManyPending();
            _votes[jobId][index].push(uint256(uint160(msg.sender)) | (valid ? VALID_BIT : 0));
            if (valid) u.validVotes += 1;
            else u.invalidVotes += 1;
            _updates[jobId][index] = u;
            a.pending += 1;
            _accounts[msg.sender] = a;
            emit VoteCast(jobId, index, msg.sender, valid);
            return;
        }
        _decide(jobId, index, u, j, valid, msg.sender, stored);
    }

    /// @notice Anyone may dispute a pending update before its window closes by attaching
    /// `CHALLENGE_BOND`. A quorum verdict of invalid returns the bond plus the slashed stake
    /// (less the validators' share); valid forfeits the bond to the trainer.
    /// @param jobId The job.
    /// @param index The update index.
    function challenge(uint256 jobId, uint256 index) external payable {
        Update memory u = _updates[jobId][index];
        if (u.status == UPDATE_NONE) revert UnknownUpdate(jobId, index);
        if (u.status == UPDATE_CHALLENGED) revert AlreadyChallenged(jobId, index);
        if (u.status != UPDATE_PENDING) revert AlreadyDecided(jobId, index);
        if (block.timestamp >= u.deadline) revert WindowClosed(u.deadline);
        if (msg.value != CHALLENGE_BOND) revert WrongBond(CHALLENGE_BOND, msg.value);
        u.status = UPDATE_CHALLENGED;
        _updates[jobId][index] = u;
        _challengers[jobId][index] = msg.sender;
        emit Challenged(jobId, index, msg.sender, msg.value);
    }

    /// @notice Accepts and pays an update whose window closed with no challenge and no vote.
    /// @param jobId The job.
    /// @param index The update index.
    function finalizeUpdate(uint256 jobId, uint256 index) external {
        Update memory u = _updates[jobId][index];
        if (u.status == UPDATE_NONE) revert UnknownUpdate(jobId, index);
        if (u.status > UPDATE_CHALLENGED) revert AlreadyDecided(jobId, index);
        if (u.status == UPDATE_CHALLENGED || u.validVotes != 0 || u.invalidVotes != 0) {
            revert UnderReview(jobId, index);
        }
        if (block.timestamp < u.deadline) revert WindowOpen(u.deadline);
        _decide(jobId, index, u, _jobCore[jobId], true, address(0), 0);
    }

    /// @notice The leader awards the job's bonus reward to an accepted update, at most once.
    /// @param jobId The job.
    /// @param index The update index.
    function awardBonus(uint256 jobId, uint256 index) external {
        JobCore memory j = _jobCore[jobId];
        if (j.status == JOB_NONE) revert JobNotFound(jobId);
        JobInfo storage info = _jobInfo[jobId];
        if (msg.sender != info.leader) revert NotLeader(jobId);
        uint256 bonus = info.bonusReward;
        if (bonus == 0) revert NoBonus(jobId);
        Update storage u = _updates[jobId][index];
        if (u.status != UPDATE_ACCEPTED) revert NotAccepted(jobId, index);
        if (j.remaining < bonus) revert InsufficientDeposit(j.remaining, bonus);
        u.status = UPDATE_BONUSED;
        j.remaining -= uint96(bonus);
        bool exhausted = j.status == JOB_ACTIVE && j.remaining < j.baseReward;
        if (exhausted) j.status = JOB_CLOSED;
        _jobCore[jobId] = j;
        address trainer = address(uint160(index));
        _credit(trainer, bonus);
        emit BonusAwarded(jobId, index, bonus);
        emit Credited(trainer, jobId, bonus);
        if (exhausted) emit JobClosed(jobId, CLOSED_EXHAUSTED);
    }

    // ---------------------------------------------------------------------- views

    /// @notice The job `jobId` (all zero when it does not exist).
    /// @param jobId The job.
    /// @return v The job's fields.
    function getJob(uint256 jobId) external view returns (JobView memory v) {
        JobCore memory j = _jobCore[jobId];
        JobInfo memory info = _jobInfo[jobId];
        v = JobView({
            owner: info.owner,
            leader: info.leader,
            specHash: info.specHash,
            deposited: info.deposited,
            remaining: j.remaining,
            slashedIn: info.slashedIn,
            withdrawn: info.withdrawn,
            baseReward: j.baseReward,
            bonusReward: info.bonusReward,
            rounds: info.rounds,
            checkpoints: j.checkpoints,
            challengeWindow: j.challengeWindow,
            quorum: j.quorum,
            status: j.status
        });
    }

    /// @notice The update at `index` of `jobId` (status UPDATE_NONE when there is none).
    /// @param jobId The job.
    /// @param index The update index.
    /// @return v The update's fields.
    function getUpdate(uint256 jobId, uint256 index) external view returns (UpdateView memory v) {
        Update memory u = _updates[jobId][index];
        v = UpdateView({
            trainer: address(uint160(index)),
            round: uint64(index >> 160),
            hashPrefix: u.hashPrefix,
            deadline: u.deadline,
            status: u.status,
            validVotes: u.validVotes,
            invalidVotes: u.invalidVotes,
            challenger: _challengers[jobId][index]
        });
    }

    /// @notice The votes stored on an update before its verdict (the deciding vote is in
    /// `UpdateDecided`).
    /// @param jobId The job.
    /// @param index The update index.
    /// @return voters The validators, in voting order.
    /// @return valid Their votes.
    function getVotes(uint256 jobId, uint256 index) external view returns (address[] memory voters, bool[] memory valid) {
        uint256[] storage list = _votes[jobId][index];
        voters = new address[](list.length);
        valid = new bool[](list.length);
        for (uint256 i = 0; i < list.length; ++i) {
            voters[i] = address(uint160(list[i]));
            valid[i] = list[i] & VALID_BIT != 0;
        }
    }

    /// @notice The account of `account`.
    /// @param account The address.
    /// @return v Its stake, credit, unlock time, pending count and roles.
    function getAccount(address account) external view returns (AccountView memory v) {
        Account memory a = _accounts[account];
        v = AccountView({stake: a.stake, credit: a.credit, unlockAt: a.unlockAt, pending: a.pending, roles: a.roles});
    }

    /// @notice Whether `updateHash` is the hash committed for the update (its first 24 bytes
    /// are stored; the full hash is in `UpdateSubmitted`).
    /// @param jobId The job.
    /// @param index The update index.
    /// @param updateHash The full hash to check.
    /// @return True when the update exists and its stored prefix matches.
    function matchesHash(uint256 jobId, uint256 index, bytes32 updateHash) external view returns (bool) {
        Update memory u = _updates[jobId][index];
        return u.status != UPDATE_NONE && u.hashPrefix == bytes24(updateHash);
    }

    /// @notice The update index of `trainer`'s update in `round`.
    /// @param round The round.
    /// @param trainer The trainer.
    /// @return The index, `round << 160 | trainer`.
    function updateIndex(uint256 round, address trainer) external pure returns (uint256) {
        return (round << 160) | uint256(uint160(trainer));
    }

    // ------------------------------------------------------------------ internals

    function _register(uint8 role) private {
        Account memory a = _accounts[msg.sender];
        if (a.unlockAt != 0) revert Leaving(a.unlockAt);
        uint256 stake = uint256(a.stake) + msg.value;
        if (stake > type(uint96).max) revert AmountTooLarge();
        if (stake < MIN_STAKE) revert StakeTooLow(stake, MIN_STAKE);
        a.stake = uint96(stake);
        a.roles |= role;
        _accounts[msg.sender] = a;
        emit Registered(msg.sender, role, msg.value, stake);
    }

    /// @dev Settles a verdict. `decider` voted `accepted` (or is zero for a finalization);
    /// `stored` votes were recorded before it.
    function _decide(
        uint256 jobId,
        uint256 index,
        Update memory u,
        JobCore memory j,
        bool accepted,
        address decider,
        uint256 stored
    ) private {
        bool challenged = u.status == UPDATE_CHALLENGED;
        u.status = accepted ? UPDATE_ACCEPTED : UPDATE_REJECTED;
        _updates[jobId][index] = u;
        // Slashed stake that goes to the job's deposit.
        uint256 toJob = accepted
            ? _accept(jobId, index, j.baseReward, challenged, stored)
            : _reject(jobId, index, u.invalidVotes, challenged, decider, stored);
        if (toJob != 0) _jobInfo[jobId].slashedIn += uint128(toJob);
        // A rejected update's reserved reward returns to the deposit.
        uint256 back = toJob + (accepted ? 0 : j.baseReward);
        if (back != 0) {
            uint256 remaining = uint256(j.remaining) + back;
            if (remaining > type(uint96).max) revert AmountTooLarge();
            j.remaining = uint96(remaining);
            _jobCore[jobId] = j;
        }
        emit UpdateDecided(jobId, index, decider, accepted);
    }

    /// @dev Pays an accepted update's trainer; returns the penalties of dissenting voters.
    function _accept(uint256 jobId, uint256 index, uint256 reward, bool challenged, uint256 stored)
        private
        returns (uint256 toJob)
    {
        address trainer = address(uint160(index));
        Account memory t = _accounts[trainer];
        uint256 credit = uint256(t.credit) + reward + (challenged ? CHALLENGE_BOND : 0);
        if (credit > type(uint96).max) revert AmountTooLarge();
        t.credit = uint96(credit);
        unchecked {
            t.pending -= 1;
        }
        _accounts[trainer] = t;
        if (challenged) emit Credited(trainer, jobId, CHALLENGE_BOND);
        if (stored != 0) toJob = _settleVotes(jobId, index, stored, true, 0);
    }

    /// @dev Slashes a rejected update's trainer and shares the stake out; returns what goes to
    /// the job's deposit.
    function _reject(
        uint256 jobId,
        uint256 index,
        uint256 storedInvalid,
        bool challenged,
        address decider,
        uint256 stored
    ) private returns (uint256 toJob) {
        uint256 slash = _slashTrainer(jobId, address(uint160(index)));
        // Every invalid vote shares the validators' part: the stored ones and the decider's.
        uint256 invalidVoters = storedInvalid + 1;
        uint256 each = slash * VALIDATOR_SHARE_BPS / BPS / invalidVoters;
        if (each != 0) {
            _credit(decider, each);
            emit Credited(decider, jobId, each);
        }
        uint256 rest = slash - each * invalidVoters;
        uint256 penalties = stored != 0 ? _settleVotes(jobId, index, stored, false, each) : 0;
        if (challenged) {
            _payChallenger(jobId, index, CHALLENGE_BOND + rest);
            toJob = penalties;
        } else {
            toJob = rest + penalties;
        }
    }

    /// @dev Takes `TRAINER_SLASH_BPS` of a rejected trainer's stake and clears its pending mark.
    function _slashTrainer(uint256 jobId, address trainer) private returns (uint256 slash) {
        Account memory t = _accounts[trainer];
        slash = uint256(t.stake) * TRAINER_SLASH_BPS / BPS;
        t.stake -= uint96(slash);
        unchecked {
            t.pending -= 1;
        }
        _accounts[trainer] = t;
        emit Slashed(trainer, jobId, slash);
    }

    /// @dev Credits the challenger of a rejected update.
    function _payChallenger(uint256 jobId, uint256 index, uint256 payout) private {
        address challenger = _challengers[jobId][index];
        _credit(challenger, payout);
        emit Credited(challenger, jobId, payout);
    }

    /// @dev Releases the `stored` votes of an update decided `accepted`: each loses its pending
    /// mark; those on the losing side lose `VALIDATOR_PENALTY_BPS` of their stake (returned as
    /// the total, for the job), those voting invalid on a rejection get `share`.
    function _settleVotes(uint256 jobId, uint256 index, uint256 stored, bool accepted, uint256 share)
        private
        returns (uint256 penalties)
    {
        uint256[] storage list = _votes[jobId][index];
        for (uint256 i = 0; i < stored; ++i) {
            uint256 entry = list[i];
            address voter = address(uint160(entry));
            bool votedValid = entry & VALID_BIT != 0;
            Account memory v = _accounts[voter];
            unchecked {
                v.pending -= 1;
            }
            if (votedValid != accepted) {
                uint256 penalty = uint256(v.stake) * VALIDATOR_PENALTY_BPS / BPS;
                v.stake -= uint96(penalty);
                penalties += penalty;
                _accounts[voter] = v;
                if (penalty != 0) emit Slashed(voter, jobId, penalty);
            } else {
                if (share != 0) {
                    uint256 credit = uint256(v.credit) + share;
                    if (credit > type(uint96).max) revert AmountTooLarge();
                    v.credit = uint96(credit);
                }
                _accounts[voter] = v;
                if (share != 0) emit Credited(voter, jobId, share);
            }
        }
    }

    function _credit(address account, uint256 amount) private {
        Account storage a = _accounts[account];
        uint256 credit = uint256(a.credit) + amount;
        if (credit > type(uint96).max) revert AmountTooLarge();
        a.credit = uint96(credit);
    }

    function _send(address to, uint256 amount) private {
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert TransferFailed();
    }
}
