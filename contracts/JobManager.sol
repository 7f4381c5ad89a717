// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

/// @title JobManager: deposits, stakes, update commitments, verdicts and payouts of Funetun jobs
/// @notice A job owner locks a deposit; registered trainers commit the keccak256 hash of each
/// weight delta; registered validators vote; a quorum verdict pays the trainer the job's base
/// reward or slashes its stake; anyone may challenge an update during its window with a bond;
/// an unchallenged, unvoted update is accepted once its window closes. The job's leader (the
/// orchestrator) commits every round's checkpoint hash. All payouts are pull payments.
/// For `DECISION_TIMEOUT` seconds after a window closes only the leader may finalize an
/// unchecked update; after that anyone may, and an update still short of a quorum is settled
/// by the timeout rule of `finalizeUpdate` (accepted when nobody objected, void otherwise).
/// @dev Hot data is packed so that one accepted update (submit + one quorum vote + credit)
/// costs about 100k gas: an update is a single storage slot keyed by (job, round, shard, trainer).
/// The update index is `round << 192 | shard << 160 | trainer`, so the same (job, round, shard,
/// trainer) can never hold two updates, a trainer may do a second task of a round on another
/// shard, and the verdict knows whom to pay without another storage read.
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
    /// @notice Update status: no quorum by the decision timeout after a challenge or an objection;
    /// the trainer was neither paid nor slashed, the challenger got its bond back.
    uint8 public constant UPDATE_VOID = 6;

    /// @notice Role bit of a trainer.
    uint8 public constant ROLE_TRAINER = 1;
    /// @notice Role bit of a validator.
    uint8 public constant ROLE_VALIDATOR = 2;

    /// @notice Largest quorum a job may ask for.
    uint8 public constant MAX_QUORUM = 15;
    /// @notice Most results one compute task's settlement may pay or slash.
    uint8 private constant MAX_TASK_RESULTS = 32;

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
    /// @notice Seconds after an update's window closes during which only the job's leader may
    /// finalize it; after them anyone may, and an update still under review is settled by the
    /// timeout rule of `finalizeUpdate`.
    uint256 public immutable DECISION_TIMEOUT;

    // ---------------------------------------------------------------------- state

    // Hot data lives in single packed words, read and written with one SLOAD/SSTORE each.
    //
    // Job core word:  remaining (bits 0..96) | baseReward (96..176) | challengeWindow (176..208)
    //                 | checkpoints (208..240) | quorum (240..247) | pays validators (247)
    //                 | status (248..256)
    // Update word:    status (0..8) | validVotes (8..16) | invalidVotes (16..24)
    //                 | deadline (24..64) | first 24 bytes of the update hash (64..256)
    // Account word:   stake (0..96) | credit (96..192) | unlockAt (192..232)
    //                 | pending (232..248) | roles (248..256)
    uint256 private constant MASK96 = (1 << 96) - 1;
    uint256 private constant MASK80 = (1 << 80) - 1;
    uint256 private constant MASK64 = (1 << 64) - 1;
    uint256 private constant MASK40 = (1 << 40) - 1;
    uint256 private constant MASK32 = (1 << 32) - 1;
    uint256 private constant PENDING_ONE = 1 << 232;
    // Set in a job's core word when its validation reward is not zero, so the hot path reads
    // the reward from cold storage only for jobs that pay one.
    uint256 private constant PAYS_VALIDATORS = 1 << 247;

    /// @dev Fields of a job that the hot path never touches.
    struct JobInfo {
        address owner;
        uint32 rounds;
        uint64 validationReward;
        address leader;
        uint96 bonusReward;
        bytes32 specHash;
        uint128 deposited;
        uint128 slashedIn;
        uint128 withdrawn;
        uint64 expiresAt;
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
        uint256 validationReward;
        uint32 rounds;
        uint32 checkpoints;
        uint32 challengeWindow;
        uint8 quorum;
        uint8 status;
        uint64 expiresAt;
    }

    /// @notice An update as returned by `getUpdate`.
    struct UpdateView {
        address trainer;
        uint64 round;
        uint32 shard;
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

    mapping(uint256 => uint256) private _jobCore;
    mapping(uint256 => JobInfo) private _jobInfo;
    mapping(uint256 => mapping(uint256 => uint256)) private _updates;
    mapping(uint256 => mapping(uint256 => uint256[])) private _votes;
    mapping(uint256 => mapping(uint256 => address)) private _challengers;
    mapping(address => uint256) private _accounts;

    /// @dev Compute tasks a batch settled (`settleComputeTask`), by batch and task id.
    mapping(uint256 => mapping(bytes32 => bool)) private _settledTasks;

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
        uint256 validationReward,
        uint32 rounds,
        uint8 quorum,
        uint32 challengeWindow
    );
    /// @notice A job stopped accepting updates (`reason` is one of the CLOSED_* constants).
    event JobClosed(uint256 indexed jobId, uint8 reason);
    /// @notice The owner took back `amount` of unused deposit.
    event FundsWithdrawn(uint256 indexed jobId, address indexed owner, uint256 amount);
    /// @notice The leader committed the checkpoint of `round`.
    event CheckpointCommitted(
        uint256 indexed jobId, uint256 indexed round, bytes32 checkpointHash, bytes32 manifestHash
    );
    /// @notice An account registered in `role` (or topped up), adding `amount` to reach `stake`.
    event Registered(address indexed account, uint8 role, uint256 amount, uint256 stake);
    /// @notice An account left all roles; its stake unlocks at `unlockAt`.
    event LeaveRequested(address indexed account, uint64 unlockAt);
    /// @notice An account took back its stake.
    event StakeWithdrawn(address indexed account, uint256 amount);
    /// @notice A trainer committed an update; it can be challenged until `block.timestamp +
    /// challengeWindow`; its reward is reserved from the deposit. `index` is `round << 192 |
    /// shard << 160 | trainer` (one word, so the event costs no more than one with the round).
    event UpdateSubmitted(uint256 indexed jobId, address indexed trainer, uint256 index, bytes32 updateHash);
    /// @notice A validator's vote was recorded without reaching the quorum.
    event VoteCast(uint256 indexed jobId, uint256 indexed index, address indexed validator, bool valid);
    /// @notice An update was challenged with a bond.
    event Challenged(uint256 indexed jobId, uint256 indexed index, address indexed challenger, uint256 bond);
    /// @notice An update was decided. `decidedBy` cast the deciding vote (zero when finalized
    /// after an unchallenged window). When accepted, the trainer is credited the base reward
    /// (plus the bond of a failed challenge, announced by `Credited`).
    /// `validatorsPaid` is what the job's deposit paid the validators whose votes decided it
    /// (the validation reward, or less when the deposit ran short, to each of the quorum; zero
    /// for a finalization).
    event UpdateDecided(
        uint256 indexed jobId, uint256 indexed index, address indexed decidedBy, bool accepted, uint256 validatorsPaid
    );
    /// @notice `amount` was taken from `account`'s stake over job `jobId`.
    event Slashed(address indexed account, uint256 indexed jobId, uint256 amount);
    /// @notice `amount` was credited to `account` (other than a base reward, see `UpdateDecided`).
    event Credited(address indexed account, uint256 indexed jobId, uint256 amount);
    /// @notice The leader awarded the job's bonus to an accepted update.
    event BonusAwarded(uint256 indexed jobId, uint256 indexed index, uint256 amount);
    /// @notice An account withdrew its credit.
    event Withdrawn(address indexed account, uint256 amount);
    /// @notice A task batch was created with `deposit` locked until `expiresAt`.
    event TaskBatchCreated(
        uint256 indexed batchId,
        address indexed owner,
        address indexed leader,
        bytes32 specHash,
        uint256 deposit,
        uint256 resultReward,
        uint64 expiresAt
    );
    /// @notice The leader settled compute task `taskId` of a batch: `paid` results in the
    /// canonical class (whose output hashes to `resultHash`) were credited the result reward
    /// each, `slashed` results outside it cost their workers `slashedWei` in all.
    event TaskSettled(
        uint256 indexed batchId, bytes32 indexed taskId, bytes32 resultHash, uint256 paid, uint256 slashedWei
    );
    /// @notice An update challenged or objected to reached no quorum by its decision timeout: the
    /// trainer is released unpaid and unslashed, its reserved reward returns to the deposit, the
    /// challenger is credited its bond back and the stored voters are released without penalty.
    event UpdateVoided(uint256 indexed jobId, uint256 indexed index);

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
    /// @notice The update has votes or a challenge; only a quorum verdict decides it until its
    /// decision timeout.
    error UnderReview(uint256 jobId, uint256 index);
    /// @notice Only the job's leader may finalize the update before `until`.
    error LeaderGrace(uint256 jobId, uint256 until);
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
    /// @notice The id names a task batch, not a training job.
    error NotTrainingJob(uint256 jobId);
    /// @notice The id names a training job, not a task batch.
    error NotTaskBatch(uint256 jobId);
    /// @notice The task was settled already.
    error TaskAlreadySettled(uint256 batchId, bytes32 taskId);
    /// @notice The batch pays results until `expiresAt`; its unused deposit is withdrawable after.
    error BatchNotExpired(uint256 expiresAt);
    /// @notice The batch expired at `expiresAt`; it settles no more tasks.
    error BatchExpired(uint256 expiresAt);
    /// @notice A settlement names a worker twice, or more workers than `MAX_TASK_RESULTS`.
    error BadSettlement();

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
    /// @param decisionTimeout Seconds after a window closes: the leader's finalization grace, and
    /// the time a challenged update has to reach a quorum (< 2^32).
    constructor(
        uint256 minStake,
        uint256 leaveCooldown,
        uint256 challengeBond,
        uint256 trainerSlashBps,
        uint256 validatorShareBps,
        uint256 validatorPenaltyBps,
        uint256 decisionTimeout
    ) {
        if (
            minStake == 0 || minStake > type(uint96).max || challengeBond == 0 || challengeBond > type(uint96).max
                || trainerSlashBps == 0 || trainerSlashBps > BPS || validatorShareBps > BPS
                || validatorPenaltyBps > BPS || leaveCooldown > type(uint32).max
                || decisionTimeout > type(uint32).max
        ) revert InvalidParameter();
        MIN_STAKE = minStake;
        LEAVE_COOLDOWN = leaveCooldown;
        CHALLENGE_BOND = challengeBond;
        TRAINER_SLASH_BPS = trainerSlashBps;
        VALIDATOR_SHARE_BPS = validatorShareBps;
        VALIDATOR_PENALTY_BPS = validatorPenaltyBps;
        DECISION_TIMEOUT = decisionTimeout;
    }

    // ----------------------------------------------------------------------- jobs

    /// @notice Creates a job and locks `msg.value` as its deposit.
    /// @param specHash keccak256 of the job spec blob.
    /// @param leader The orchestrator that commits the job's checkpoints.
    /// @param baseReward Paid per accepted update; the deposit must exceed it.
    /// @param bonusReward What the leader may award once per accepted update (0 for none).
    /// @param validationReward Paid from the deposit to each validator whose vote is part of
    /// the quorum that decides an update (0 for none; at most 2^64 - 1 wei).
    /// @param rounds Number of training rounds; checkpoint `rounds` is the final model.
    /// @param quorum Matching votes that decide an update (1..=MAX_QUORUM).
    /// @param challengeWindow Seconds after submission during which an update can be challenged.
    /// @return jobId The new job's id.
    function createJob(
        bytes32 specHash,
        address leader,
        uint256 baseReward,
        uint256 bonusReward,
        uint256 validationReward,
        uint32 rounds,
        uint8 quorum,
        uint32 challengeWindow
    ) external payable returns (uint256 jobId) {
        if (specHash == bytes32(0)) revert ZeroHash();
        if (leader == address(0)) revert ZeroAddress();
        if (rounds == 0) revert InvalidRounds();
        if (quorum == 0 || quorum > MAX_QUORUM) revert InvalidQuorum(quorum);
        if (baseReward == 0 || baseReward > MASK80) revert InvalidReward();
        if (msg.value <= baseReward) revert DepositTooSmall(msg.value, baseReward);
        if (msg.value > MASK96 || bonusReward > MASK96 || validationReward > MASK64) revert AmountTooLarge();

        jobId = ++jobCount;
        _jobCore[jobId] = msg.value | (baseReward << 96) | (uint256(challengeWindow) << 176)
            | (uint256(quorum) << 240) | (validationReward != 0 ? PAYS_VALIDATORS : 0)
            | (uint256(JOB_ACTIVE) << 248);
        _jobInfo[jobId] = JobInfo({
            owner: msg.sender,
            rounds: rounds,
            validationReward: uint64(validationReward),
            leader: leader,
            bonusReward: uint96(bonusReward),
            specHash: specHash,
            deposited: uint128(msg.value),
            slashedIn: 0,
            withdrawn: 0,
            expiresAt: 0
        });
        emit JobCreated(
            jobId,
            msg.sender,
            leader,
            specHash,
            msg.value,
            baseReward,
            bonusReward,
            validationReward,
            rounds,
            quorum,
            challengeWindow
        );
    }

    /// @notice Commits the checkpoint hash of `round`; rounds are committed in order from 0.
    /// Committing round `rounds` (the final model) closes the job.
    /// @param jobId The job.
    /// @param round Must equal the number of checkpoints committed so far.
    /// @param hash keccak256 of the checkpoint's canonical encoding.
    /// @param manifest keccak256 of the manifest naming what the checkpoint was built from (its
    /// parent, the accepted updates with their weights, the rule and the outer optimizer's
    /// states), so anyone can recompute it; zero only for checkpoint 0. Emitted, not stored.
    function commitCheckpoint(uint256 jobId, uint256 round, bytes32 hash, bytes32 manifest) external {
        uint256 j = _jobCore[jobId];
        uint256 status = j >> 248;
        if (status == JOB_NONE) revert JobNotFound(jobId);
        JobInfo storage info = _jobInfo[jobId];
        if (msg.sender != info.leader) revert NotLeader(jobId);
        if (info.rounds == 0) revert NotTrainingJob(jobId);
        uint256 checkpoints = (j >> 208) & MASK32;
        if (round != checkpoints || round > info.rounds) revert WrongRound(checkpoints, round);
        if (hash == bytes32(0) || (round > 0 && manifest == bytes32(0))) revert ZeroHash();
        checkpointHash[jobId][round] = hash;
        j = (j & ~(MASK32 << 208)) | ((round + 1) << 208);
        bool finished = round == info.rounds && status == JOB_ACTIVE;
        if (finished) j = _withStatus(j, JOB_CLOSED);
        _jobCore[jobId] = j;
        emit CheckpointCommitted(jobId, round, hash, manifest);
        if (finished) emit JobClosed(jobId, CLOSED_FINISHED);
    }

    /// @notice Closes the job (if still active) and sends its owner the unreserved deposit.
    /// May be called again later to collect rewards released by rejected updates.
    /// @param jobId The job.
    function withdrawUnusedFunds(uint256 jobId) external nonReentrant {
        uint256 j = _jobCore[jobId];
        uint256 status = j >> 248;
        if (status == JOB_NONE) revert JobNotFound(jobId);
        JobInfo storage info = _jobInfo[jobId];
        if (msg.sender != info.owner) revert NotJobOwner(jobId);
        if (info.rounds == 0 && block.timestamp < info.expiresAt) revert BatchNotExpired(info.expiresAt);
        uint256 amount = j & MASK96;
        bool closing = status == JOB_ACTIVE;
        if (!closing && amount == 0) revert NothingToWithdraw();
        j &= ~MASK96;
        if (closing) j = _withStatus(j, JOB_CLOSED);
        _jobCore[jobId] = j;
        info.withdrawn += uint128(amount);
        if (closing) emit JobClosed(jobId, CLOSED_BY_OWNER);
        emit FundsWithdrawn(jobId, msg.sender, amount);
        if (amount != 0) _send(msg.sender, amount);
    }

    // -------------------------------------------------------------- task batches

    /// @notice Creates a task batch and locks `msg.value` to pay the results of generic compute
    /// tasks (docs/tasks.md). A batch shares the job ids, the deposit books and
    /// `withdrawUnusedFunds` with training jobs; it has no rounds (`getJob(..).rounds == 0`).
    /// Its leader settles each task once the task's redundancy quorum has decided
    /// (`settleComputeTask`). The owner may take back the unused deposit only once the batch
    /// expired, so a worker's pay cannot be withdrawn from under it.
    /// @param specHash keccak256 of what the batch is for (not read by the contract; nonzero).
    /// @param leader The orchestrator that decides the batch's tasks and settles them.
    /// @param resultReward Paid per result in a task's canonical class (positive, < 2^80).
    /// @param duration Seconds from now until the batch expires.
    /// @return batchId The batch's id (a job id).
    function createTaskBatch(bytes32 specHash, address leader, uint256 resultReward, uint32 duration)
        external
        payable
        returns (uint256 batchId)
    {
        if (specHash == bytes32(0)) revert ZeroHash();
        if (leader == address(0)) revert ZeroAddress();
        if (resultReward == 0 || resultReward > MASK80) revert InvalidReward();
        if (msg.value < resultReward) revert DepositTooSmall(msg.value, resultReward);
        if (msg.value > MASK96) revert AmountTooLarge();
        uint64 expiresAt = uint64(block.timestamp + duration);
        batchId = ++jobCount;
        _jobCore[batchId] = msg.value | (resultReward << 96) | (uint256(JOB_ACTIVE) << 248);
        _jobInfo[batchId] = JobInfo({
            owner: msg.sender,
            rounds: 0,
            validationReward: 0,
            leader: leader,
            bonusReward: 0,
            specHash: specHash,
            deposited: uint128(msg.value),
            slashedIn: 0,
            withdrawn: 0,
            expiresAt: expiresAt
        });
        emit TaskBatchCreated(batchId, msg.sender, leader, specHash, msg.value, resultReward, expiresAt);
    }

    /// @notice The leader settles a compute task of a batch once its quorum decided: each of
    /// `paid` (the workers whose results are in the canonical class) is credited the batch's
    /// result reward from the deposit; each of `slashed` (results outside the class) loses
    /// `TRAINER_SLASH_BPS` of its stake to the deposit. Each task settles once, before the
    /// batch expires; the result itself is public at the leader, `resultHash` commits to it.
    /// @param batchId The batch.
    /// @param taskId The task's persistent id.
    /// @param resultHash keccak256 of the canonical result (zero when nobody is paid).
    /// @param paid Workers paid, distinct, each at most once per task.
    /// @param slashed Workers slashed, distinct and not among `paid`.
    function settleComputeTask(
        uint256 batchId,
        bytes32 taskId,
        bytes32 resultHash,
        address[] calldata paid,
        address[] calldata slashed
    ) external {
        uint256 j = _jobCore[batchId];
        if (j >> 248 == JOB_NONE) revert JobNotFound(batchId);
        JobInfo storage info = _jobInfo[batchId];
        if (msg.sender != info.leader) revert NotLeader(batchId);
        if (info.rounds != 0) revert NotTaskBatch(batchId);
        if (block.timestamp >= info.expiresAt) revert BatchExpired(info.expiresAt);
        if (taskId == bytes32(0) || (paid.length != 0 && resultHash == bytes32(0))) revert ZeroHash();
        _checkDistinct(paid, slashed);
        mapping(bytes32 => bool) storage settled = _settledTasks[batchId];
        if (settled[taskId]) revert TaskAlreadySettled(batchId, taskId);
        settled[taskId] = true;

        uint256 slashedWei = _slashAll(batchId, slashed);
        _payAll(batchId, j, paid, slashedWei);
        if (slashedWei != 0) info.slashedIn += uint128(slashedWei);
        emit TaskSettled(batchId, taskId, resultHash, paid.length, slashedWei);
    }

    /// @notice Whether task `taskId` of batch `batchId` was settled.
    /// @param batchId The batch.
    /// @param taskId The task's persistent id.
    /// @return True once `settleComputeTask` ran for it.
    function taskSettled(uint256 batchId, bytes32 taskId) external view returns (bool) {
        return _settledTasks[batchId][taskId];
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
        uint256 a = _accounts[msg.sender];
        if (a >> 248 == 0) revert NotRegistered(msg.sender);
        uint256 pending = (a >> 232) & 0xffff;
        if (pending != 0) revert PendingVerdicts(pending);
        uint256 unlockAt = block.timestamp + LEAVE_COOLDOWN;
        // Clear roles, set the unlock time.
        _accounts[msg.sender] = (a & ((1 << 192) - 1)) | (unlockAt << 192);
        emit LeaveRequested(msg.sender, uint64(unlockAt));
    }

    /// @notice Sends the caller its whole stake once its leave cooldown has passed.
    function withdrawStake() external nonReentrant {
        uint256 a = _accounts[msg.sender];
        uint256 unlockAt = (a >> 192) & MASK40;
        if (unlockAt == 0) revert NotLeaving(msg.sender);
        if (block.timestamp < unlockAt) revert StakeLocked(unlockAt);
        uint256 amount = a & MASK96;
        // Keep only the credit.
        _accounts[msg.sender] = a & (MASK96 << 96);
        emit StakeWithdrawn(msg.sender, amount);
        if (amount != 0) _send(msg.sender, amount);
    }

    /// @notice Sends the caller all its credited payouts.
    function withdraw() external nonReentrant {
        uint256 a = _accounts[msg.sender];
        uint256 amount = (a >> 96) & MASK96;
        if (amount == 0) revert NothingToWithdraw();
        _accounts[msg.sender] = a & ~(MASK96 << 96);
        emit Withdrawn(msg.sender, amount);
        _send(msg.sender, amount);
    }

    // ------------------------------------------------------------------- updates

    /// @notice Commits the hash of the caller's weight delta for `round` of `jobId`, the round
    /// whose base checkpoint was committed last. Reserves the base reward from the deposit; a
    /// job whose deposit then cannot cover another reward closes itself.
    /// @param jobId The job.
    /// @param round The current round.
    /// @param shard The data shard the update was trained on (a trainer may submit one update
    /// per shard of a round).
    /// @param updateHash keccak256 of the delta's canonical encoding.
    /// @return index The update index, `round << 192 | shard << 160 | msg.sender`.
    function submitUpdate(uint256 jobId, uint256 round, uint32 shard, bytes32 updateHash)
        external
        returns (uint256 index)
    {
        uint256 j = _jobCore[jobId];
        if (j >> 248 != JOB_ACTIVE) {
            if (j >> 248 == JOB_NONE) revert JobNotFound(jobId);
            revert JobNotActive(jobId);
        }
        uint256 checkpoints = (j >> 208) & MASK32;
        if (checkpoints == 0 || round != checkpoints - 1) {
            revert WrongRound(checkpoints == 0 ? 0 : checkpoints - 1, round);
        }
        if (updateHash == bytes32(0)) revert ZeroHash();
        uint256 a = _accounts[msg.sender];
        if ((a >> 248) & ROLE_TRAINER == 0) revert NotTrainer(msg.sender);
        if (a & MASK96 < MIN_STAKE) revert StakeTooLow(a & MASK96, MIN_STAKE);
        if ((a >> 232) & 0xffff == 0xffff) revert TooManyPending();
        index = (round << 192) | (uint256(shard) << 160) | uint256(uint160(msg.sender));
        mapping(uint256 => uint256) storage updates = _updates[jobId];
        if (updates[index] != 0) revert AlreadySubmitted(jobId, index);

        uint256 reward = (j >> 96) & MASK80;
        // Active implies remaining >= reward: the subtraction cannot borrow.
        j -= reward;
        bool exhausted = j & MASK96 < reward;
        if (exhausted) j = _withStatus(j, JOB_CLOSED);
        _jobCore[jobId] = j;
        unchecked {
            _accounts[msg.sender] = a + PENDING_ONE;
        }
        uint256 deadline = block.timestamp + ((j >> 176) & MASK32);
        updates[index] = (uint256(updateHash) & ~MASK64) | (deadline << 24) | UPDATE_PENDING;
        emit UpdateSubmitted(jobId, msg.sender, index, updateHash);
        if (exhausted) emit JobClosed(jobId, CLOSED_EXHAUSTED);
    }

    /// @notice Votes on an update. The first side to reach the job's quorum decides it: valid
    /// credits the trainer the base reward; invalid slashes the trainer's stake. The quorum of
    /// validators on the verdict's side is paid the job's validation reward from its deposit;
    /// validators whose stored vote disagrees with the verdict lose `VALIDATOR_PENALTY_BPS` of
    /// their stake.
    /// @param jobId The job.
    /// @param index The update index.
    /// @param valid The caller's verdict.
    function validateUpdate(uint256 jobId, uint256 index, bool valid) external {
        uint256 u = _updates[jobId][index];
        uint256 status = u & 0xff;
        if (status == UPDATE_NONE) revert UnknownUpdate(jobId, index);
        if (status > UPDATE_CHALLENGED) revert AlreadyDecided(jobId, index);
        if (msg.sender == address(uint160(index))) revert SelfValidation();
        uint256 a = _accounts[msg.sender];
        if ((a >> 248) & ROLE_VALIDATOR == 0) revert NotValidator(msg.sender);
        if (a & MASK96 < MIN_STAKE) revert StakeTooLow(a & MASK96, MIN_STAKE);
        uint256 j = _jobCore[jobId];

        uint256 validVotes = (u >> 8) & 0xff;
        uint256 invalidVotes = (u >> 16) & 0xff;
        uint256 stored = validVotes + invalidVotes;
        if (stored != 0) {
            uint256[] storage list = _votes[jobId][index];
            for (uint256 i = 0; i < stored; ++i) {
                if (address(uint160(list[i])) == msg.sender) revert AlreadyVoted(msg.sender);
            }
        }
        if ((valid ? validVotes : invalidVotes) + 1 < (j >> 240) & 0x7f) {
            if ((a >> 232) & 0xffff == 0xffff) revert TooManyPending();
            _votes[jobId][index].push(uint256(uint160(msg.sender)) | (valid ? VALID_BIT : 0));
            _updates[jobId][index] = u + (valid ? 1 << 8 : 1 << 16);
            unchecked {
                _accounts[msg.sender] = a + PENDING_ONE;
            }
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
        uint256 u = _updates[jobId][index];
        uint256 status = u & 0xff;
        if (status == UPDATE_NONE) revert UnknownUpdate(jobId, index);
        if (status == UPDATE_CHALLENGED) revert AlreadyChallenged(jobId, index);
        if (status != UPDATE_PENDING) revert AlreadyDecided(jobId, index);
        uint256 deadline = (u >> 24) & MASK40;
        if (block.timestamp >= deadline) revert WindowClosed(deadline);
        if (msg.value != CHALLENGE_BOND) revert WrongBond(CHALLENGE_BOND, msg.value);
        _updates[jobId][index] = (u & ~uint256(0xff)) | UPDATE_CHALLENGED;
        _challengers[jobId][index] = msg.sender;
        emit Challenged(jobId, index, msg.sender, msg.value);
    }

    /// @notice Settles an update whose window closed without a quorum verdict.
    /// Unchallenged and unvoted, it is accepted and paid: by the job's leader alone during
    /// `DECISION_TIMEOUT` after the window (so a trainer cannot finalize its own update before
    /// the leader sent it to validators), by anyone after. Challenged or voted on, it waits for
    /// a quorum until the timeout; then, with only valid votes and no challenge it is accepted,
    /// otherwise it is void (`UpdateVoided`): nobody is paid or slashed, the challenger's bond
    /// is returned and the reserved reward goes back to the deposit.
    /// @param jobId The job.
    /// @param index The update index.
    function finalizeUpdate(uint256 jobId, uint256 index) external {
        uint256 u = _updates[jobId][index];
        uint256 status = u & 0xff;
        if (status == UPDATE_NONE) revert UnknownUpdate(jobId, index);
        if (status > UPDATE_CHALLENGED) revert AlreadyDecided(jobId, index);
        bool reviewed = status == UPDATE_CHALLENGED || (u >> 8) & 0xffff != 0;
        uint256 deadline = (u >> 24) & MASK40;
        uint256 timeout = deadline + DECISION_TIMEOUT;
        if (block.timestamp < timeout) {
            if (reviewed) revert UnderReview(jobId, index);
            if (block.timestamp < deadline) revert WindowOpen(deadline);
            if (msg.sender != _jobInfo[jobId].leader) revert LeaderGrace(jobId, timeout);
        } else if (status == UPDATE_CHALLENGED || (u >> 16) & 0xff != 0) {
            _void(jobId, index, u);
            return;
        }
        // Stored votes (all valid here) are released; a finalization pays no validator.
        _decide(jobId, index, u, _jobCore[jobId], true, address(0), (u >> 8) & 0xff);
    }

    /// @notice The leader awards the job's bonus reward to an accepted update, at most once.
    /// @param jobId The job.
    /// @param index The update index.
    function awardBonus(uint256 jobId, uint256 index) external {
        uint256 j = _jobCore[jobId];
        if (j >> 248 == JOB_NONE) revert JobNotFound(jobId);
        JobInfo storage info = _jobInfo[jobId];
        if (msg.sender != info.leader) revert NotLeader(jobId);
        uint256 bonus = info.bonusReward;
        if (bonus == 0) revert NoBonus(jobId);
        uint256 u = _updates[jobId][index];
        if (u & 0xff != UPDATE_ACCEPTED) revert NotAccepted(jobId, index);
        uint256 remaining = j & MASK96;
        if (remaining < bonus) revert InsufficientDeposit(remaining, bonus);
        _updates[jobId][index] = (u & ~uint256(0xff)) | UPDATE_BONUSED;
        j -= bonus;
        bool exhausted = j >> 248 == JOB_ACTIVE && j & MASK96 < (j >> 96) & MASK80;
        if (exhausted) j = _withStatus(j, JOB_CLOSED);
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
        uint256 j = _jobCore[jobId];
        JobInfo memory info = _jobInfo[jobId];
        v = JobView({
            owner: info.owner,
            leader: info.leader,
            specHash: info.specHash,
            deposited: info.deposited,
            remaining: j & MASK96,
            slashedIn: info.slashedIn,
            withdrawn: info.withdrawn,
            baseReward: (j >> 96) & MASK80,
            bonusReward: info.bonusReward,
            validationReward: info.validationReward,
            rounds: info.rounds,
            checkpoints: uint32(j >> 208),
            challengeWindow: uint32(j >> 176),
            quorum: uint8((j >> 240) & 0x7f),
            status: uint8(j >> 248),
            expiresAt: info.expiresAt
        });
    }

    /// @notice The update at `index` of `jobId` (status UPDATE_NONE when there is none).
    /// @param jobId The job.
    /// @param index The update index.
    /// @return v The update's fields.
    function getUpdate(uint256 jobId, uint256 index) external view returns (UpdateView memory v) {
        uint256 u = _updates[jobId][index];
        v = UpdateView({
            trainer: address(uint160(index)),
            round: uint64(index >> 192),
            shard: uint32(index >> 160),
            hashPrefix: bytes24(bytes32(u)),
            deadline: uint64((u >> 24) & MASK40),
            status: uint8(u),
            validVotes: uint8(u >> 8),
            invalidVotes: uint8(u >> 16),
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
        uint256 a = _accounts[account];
        v = AccountView({
            stake: a & MASK96,
            credit: (a >> 96) & MASK96,
            unlockAt: uint64((a >> 192) & MASK40),
            pending: uint16(a >> 232),
            roles: uint8(a >> 248)
        });
    }

    /// @notice Whether `updateHash` is the hash committed for the update (its first 24 bytes
    /// are stored; the full hash is in `UpdateSubmitted`).
    /// @param jobId The job.
    /// @param index The update index.
    /// @param updateHash The full hash to check.
    /// @return True when the update exists and its stored prefix matches.
    function matchesHash(uint256 jobId, uint256 index, bytes32 updateHash) external view returns (bool) {
        uint256 u = _updates[jobId][index];
        return u != 0 && (u & ~MASK64) == (uint256(updateHash) & ~MASK64);
    }

    /// @notice The update index of `trainer`'s update on `shard` in `round`.
    /// @param round The round.
    /// @param shard The shard.
    /// @param trainer The trainer.
    /// @return The index, `round << 192 | shard << 160 | trainer`.
    function updateIndex(uint256 round, uint32 shard, address trainer) external pure returns (uint256) {
        return (round << 192) | (uint256(shard) << 160) | uint256(uint160(trainer));
    }

    // ------------------------------------------------------------------ internals

    function _withStatus(uint256 j, uint256 status) private pure returns (uint256) {
        return (j & ~(uint256(0xff) << 248)) | (status << 248);
    }

    function _register(uint8 role) private {
        uint256 a = _accounts[msg.sender];
        uint256 unlockAt = (a >> 192) & MASK40;
        if (unlockAt != 0) revert Leaving(unlockAt);
        uint256 stake = (a & MASK96) + msg.value;
        if (stake > MASK96) revert AmountTooLarge();
        if (stake < MIN_STAKE) revert StakeTooLow(stake, MIN_STAKE);
        _accounts[msg.sender] = (a & ~MASK96) | stake | (uint256(role) << 248);
        emit Registered(msg.sender, role, msg.value, stake);
    }

    /// @dev Settles a verdict. `decider` voted `accepted` (or is zero for a finalization);
    /// `stored` votes were recorded before it.
    function _decide(
        uint256 jobId,
        uint256 index,
        uint256 u,
        uint256 j,
        bool accepted,
        address decider,
        uint256 stored
    ) private {
        bool challenged = u & 0xff == UPDATE_CHALLENGED;
        _updates[jobId][index] = (u & ~uint256(0xff)) | (accepted ? UPDATE_ACCEPTED : UPDATE_REJECTED);
        uint256 reward = (j >> 96) & MASK80;
        // A vote decided it: each of the quorum on the verdict's side earns the validation reward
        // (`Credited`; `UpdateDecided` carries the total).
        uint256 pay = decider == address(0) || j & PAYS_VALIDATORS == 0 ? 0 : _validationPay(jobId, j);
        // Slashed stake that goes to the job's deposit.
        uint256 toJob = accepted
            ? _accept(jobId, index, reward, challenged, decider, stored, pay)
            : _reject(jobId, index, (u >> 16) & 0xff, challenged, decider, stored, pay);
        if (toJob != 0) _jobInfo[jobId].slashedIn += uint128(toJob);
        // A rejected update's reserved reward returns to the deposit; the validators' pay leaves it.
        uint256 spent = pay * ((j >> 240) & 0x7f);
        _settleDeposit(jobId, j, toJob + (accepted ? 0 : reward), spent);
        emit UpdateDecided(jobId, index, decider, accepted, spent);
    }

    /// @dev Adds `back` to the job's unreserved deposit and takes `spent` from it (which
    /// `_validationPay` keeps within it); an active job left unable to reserve one more base
    /// reward closes itself.
    function _settleDeposit(uint256 jobId, uint256 j, uint256 back, uint256 spent) private {
        if (back == 0 && spent == 0) return;
        uint256 remaining = (j & MASK96) + back - spent;
        if (remaining > MASK96) revert AmountTooLarge();
        j = (j & ~MASK96) | remaining;
        bool exhausted = j >> 248 == JOB_ACTIVE && remaining < (j >> 96) & MASK80;
        if (exhausted) j = _withStatus(j, JOB_CLOSED);
        _jobCore[jobId] = j;
        if (exhausted) emit JobClosed(jobId, CLOSED_EXHAUSTED);
    }

    /// @dev What each deciding validator earns: the job's validation reward, or the equal share
    /// of the unreserved deposit when that cannot cover a whole quorum.
    function _validationPay(uint256 jobId, uint256 j) private view returns (uint256 each) {
        each = _jobInfo[jobId].validationReward;
        if (each != 0) {
            uint256 affordable = (j & MASK96) / ((j >> 240) & 0x7f);
            if (affordable < each) each = affordable;
        }
    }

    /// @dev Pays an accepted update's trainer and its deciding validators (`pay` each); returns
    /// the penalties of dissenting voters.
    function _accept(
        uint256 jobId,
        uint256 index,
        uint256 reward,
        bool challenged,
        address decider,
        uint256 stored,
        uint256 pay
    ) private returns (uint256 toJob) {
        address trainer = address(uint160(index));
        uint256 t = _accounts[trainer];
        uint256 amount = reward + (challenged ? CHALLENGE_BOND : 0);
        if (((t >> 96) & MASK96) + amount > MASK96) revert AmountTooLarge();
        // Add the credit and release the pending mark in one write.
        _accounts[trainer] = t + (amount << 96) - PENDING_ONE;
        if (challenged) emit Credited(trainer, jobId, CHALLENGE_BOND);
        if (pay != 0) {
            _credit(decider, pay);
            emit Credited(decider, jobId, pay);
        }
        if (stored != 0) toJob = _settleVotes(jobId, index, stored, true, pay);
    }

    /// @dev Slashes a rejected update's trainer, shares the stake out and pays the deciding
    /// validators (`pay` each); returns what goes to the job's deposit.
    function _reject(
        uint256 jobId,
        uint256 index,
        uint256 storedInvalid,
        bool challenged,
        address decider,
        uint256 stored,
        uint256 pay
    ) private returns (uint256 toJob) {
        uint256 slash = _slashTrainer(jobId, address(uint160(index)));
        // Every invalid vote shares the validators' part: the stored ones and the decider's.
        uint256 invalidVoters = storedInvalid + 1;
        uint256 each = slash * VALIDATOR_SHARE_BPS / BPS / invalidVoters;
        if (each + pay != 0) {
            _credit(decider, each + pay);
            emit Credited(decider, jobId, each + pay);
        }
        uint256 rest = slash - each * invalidVoters;
        uint256 penalties = stored != 0 ? _settleVotes(jobId, index, stored, false, each + pay) : 0;
        if (challenged) {
            _payChallenger(jobId, index, CHALLENGE_BOND + rest);
            toJob = penalties;
        } else {
            toJob = rest + penalties;
        }
    }

    /// @dev Takes `TRAINER_SLASH_BPS` of a rejected trainer's stake and clears its pending mark.
    function _slashTrainer(uint256 jobId, address trainer) private returns (uint256 slash) {
        uint256 t = _accounts[trainer];
        slash = (t & MASK96) * TRAINER_SLASH_BPS / BPS;
        _accounts[trainer] = t - slash - PENDING_ONE;
        emit Slashed(trainer, jobId, slash);
    }

    /// @dev Voids an update that reached no quorum by its decision timeout (see `finalizeUpdate`).
    function _void(uint256 jobId, uint256 index, uint256 u) private {
        _updates[jobId][index] = (u & ~uint256(0xff)) | UPDATE_VOID;
        address trainer = address(uint160(index));
        _accounts[trainer] -= PENDING_ONE;
        uint256 stored = ((u >> 8) & 0xff) + ((u >> 16) & 0xff);
        uint256[] storage list = _votes[jobId][index];
        for (uint256 i = 0; i < stored; ++i) {
            _accounts[address(uint160(list[i]))] -= PENDING_ONE;
        }
        if (u & 0xff == UPDATE_CHALLENGED) _payChallenger(jobId, index, CHALLENGE_BOND);
        uint256 j = _jobCore[jobId];
        _settleDeposit(jobId, j, (j >> 96) & MASK80, 0);
        emit UpdateVoided(jobId, index);
    }

    /// @dev Credits the challenger of a rejected update (or of a void one, its bond).
    function _payChallenger(uint256 jobId, uint256 index, uint256 payout) private {
        address challenger = _challengers[jobId][index];
        _credit(challenger, payout);
        emit Credited(challenger, jobId, payout);
    }

    /// @dev Releases the `stored` votes of an update decided `accepted`: each loses its pending
    /// mark; those on the losing side lose `VALIDATOR_PENALTY_BPS` of their stake (returned as
    /// the total, for the job), those on the verdict's side get `share`.
    function _settleVotes(uint256 jobId, uint256 index, uint256 stored, bool accepted, uint256 share)
        private
        returns (uint256 penalties)
    {
        uint256[] storage list = _votes[jobId][index];
        for (uint256 i = 0; i < stored; ++i) {
            uint256 entry = list[i];
            address voter = address(uint160(entry));
            bool votedValid = entry & VALID_BIT != 0;
            uint256 v = _accounts[voter] - PENDING_ONE;
            if (votedValid != accepted) {
                uint256 penalty = (v & MASK96) * VALIDATOR_PENALTY_BPS / BPS;
                _accounts[voter] = v - penalty;
                penalties += penalty;
                if (penalty != 0) emit Slashed(voter, jobId, penalty);
            } else {
                if (share != 0) {
                    if (((v >> 96) & MASK96) + share > MASK96) revert AmountTooLarge();
                    v += share << 96;
                }
                _accounts[voter] = v;
                if (share != 0) emit Credited(voter, jobId, share);
            }
        }
    }

    /// @dev Reverts `BadSettlement` unless the workers of a settlement are at most
    /// `MAX_TASK_RESULTS` and pairwise distinct.
    function _checkDistinct(address[] calldata paid, address[] calldata slashed) private pure {
        uint256 n = paid.length + slashed.length;
        if (n > MAX_TASK_RESULTS) revert BadSettlement();
        for (uint256 i = 1; i < n; ++i) {
            address a = i < paid.length ? paid[i] : slashed[i - paid.length];
            for (uint256 k = 0; k < i; ++k) {
                if (a == (k < paid.length ? paid[k] : slashed[k - paid.length])) revert BadSettlement();
            }
        }
    }

    /// @dev Credits each of `paid` the batch's result reward from its deposit (core word `j`),
    /// to which `slashedWei` was just added.
    function _payAll(uint256 batchId, uint256 j, address[] calldata paid, uint256 slashedWei) private {
        uint256 reward = (j >> 96) & MASK80;
        uint256 cost = reward * paid.length;
        uint256 remaining = (j & MASK96) + slashedWei;
        if (remaining < cost) revert InsufficientDeposit(remaining, cost);
        for (uint256 i = 0; i < paid.length; ++i) {
            _credit(paid[i], reward);
            emit Credited(paid[i], batchId, reward);
        }
        if (remaining - cost > MASK96) revert AmountTooLarge();
        _jobCore[batchId] = (j & ~MASK96) | (remaining - cost);
    }

    /// @dev Takes `TRAINER_SLASH_BPS` of each worker's stake; returns the total.
    function _slashAll(uint256 batchId, address[] calldata slashed) private returns (uint256 total) {
        for (uint256 i = 0; i < slashed.length; ++i) {
            uint256 t = _accounts[slashed[i]];
            uint256 slash = (t & MASK96) * TRAINER_SLASH_BPS / BPS;
            _accounts[slashed[i]] = t - slash;
            total += slash;
            emit Slashed(slashed[i], batchId, slash);
        }
    }

    function _credit(address account, uint256 amount) private {
        uint256 a = _accounts[account];
        if (((a >> 96) & MASK96) + amount > MASK96) revert AmountTooLarge();
        _accounts[account] = a + (amount << 96);
    }

    function _send(address to, uint256 amount) private {
        (bool ok,) = to.call{value: amount}("");
        if (!ok) revert TransferFailed();
    }
}
