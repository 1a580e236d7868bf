//! A deterministic simulation of peergrid's verification: thousands of
//! simulated workers, some of them cheating, run 100,000+ jobs scheduled by
//! the real [`JobVerification`] policy, scored by the real [`Reputation`]
//! and probed by the real [`SpotChecks`] — no copy of their logic, no
//! sockets, no clock (job `n` happens at `n × 100` ms), one seeded RNG per
//! scenario.
//!
//! ```sh
//! cargo run --release -p scheduler-lib --example simulate
//! cargo run --release -p scheduler-lib --example simulate -- --workers 500 --jobs 20000 --seed 7
//! ```
//!
//! It prints one markdown table row per (cheater model, cheater fraction):
//! wrong results accepted, executions per accepted job (spot-checks
//! included), how many jobs a cheater ran before its ban, and honest workers
//! wrongly banned. `ALGORITHM.md` explains the numbers.

use std::process::ExitCode;

use peergrid_proto::PeerId;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use scheduler_lib::adaptive::{AdaptiveConfig, Decision, JobVerification, PlanReason};
use scheduler_lib::outcome::VoteKey;
use scheduler_lib::reputation::{Change, Observation, Reputation, ReputationConfig};
use scheduler_lib::spot_check::{SpotCheckConfig, SpotChecks};

/// How a cheating worker cheats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Model {
    /// Every answer wrong (a different garbage output each time).
    AlwaysWrong,
    /// Wrong with probability `Params::wrong_p`.
    Sometimes,
    /// Honest for its first n runs, n uniform in `sleeper_after ..= 3 ×
    /// sleeper_after` (so sleepers wake up at different times), then always
    /// wrong.
    Sleeper,
    /// All colluders return the same wrong answer for a given job.
    Colluder,
    /// Colluders that answer honestly unless at least two of them hold a
    /// majority of a job's replicas; then they all return the same wrong
    /// answer. They pass every spot-check and are never outvoted.
    CarefulColluder,
    /// Runs a job only now and then; otherwise returns its last real output.
    Lazy,
    /// Accepts jobs and usually never answers.
    Timeout,
}

impl Model {
    const ALL: [Model; 7] = [
        Model::AlwaysWrong,
        Model::Sometimes,
        Model::Sleeper,
        Model::Colluder,
        Model::CarefulColluder,
        Model::Lazy,
        Model::Timeout,
    ];

    fn name(self, p: &Params) -> String {
        match self {
            Model::AlwaysWrong => "always wrong".into(),
            Model::Sometimes => format!("wrong w.p. {}", p.wrong_p),
            Model::Sleeper => format!(
                "honest {}–{} runs, then always wrong",
                p.sleeper_after,
                3 * p.sleeper_after
            ),
            Model::Colluder => "colluders, always the same wrong answer".into(),
            Model::CarefulColluder => "colluders, lie only as a majority of a job".into(),
            Model::Lazy => format!("lazy (runs {:.0}%, else cached)", p.lazy_runs * 100.0),
            Model::Timeout => format!("times out {:.0}%", p.timeout_rate * 100.0),
        }
    }
}

/// Everything a run depends on.
#[derive(Debug, Clone)]
struct Params {
    workers: usize,
    jobs: u64,
    seed: u64,
    /// Honest workers time out this often too.
    honest_timeout: f64,
    wrong_p: f64,
    sleeper_after: u64,
    lazy_runs: f64,
    timeout_rate: f64,
    /// Chance per job that some banned worker asks for work (and so gets a
    /// spot-check, its only way back).
    recovery_offer: f64,
    adaptive: AdaptiveConfig,
    reputation: ReputationConfig,
    spot: SpotCheckConfig,
}

impl Default for Params {
    fn default() -> Self {
        Self {
            workers: 2_000,
            jobs: 200_000,
            seed: 20_261_125,
            honest_timeout: 0.01,
            wrong_p: 0.1,
            sleeper_after: 20,
            lazy_runs: 0.25,
            timeout_rate: 0.9,
            recovery_offer: 0.05,
            adaptive: AdaptiveConfig::default(),
            reputation: ReputationConfig::default(),
            spot: SpotCheckConfig::default(),
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone, Default)]
struct Stats {
    accepted: u64,
    wrong_accepted: u64,
    wrong_alone: u64,
    no_quorum: u64,
    executions: u64,
    spot_checks: u64,
    late_executions: u64,
    late_accepted: u64,
    alone: u64,
    cheaters: usize,
    runs_to_ban: Vec<u64>,
    honest_banned: usize,
    honest_still_banned: usize,
}

impl Stats {
    fn wrong_rate(&self) -> f64 {
        self.wrong_accepted as f64 / self.accepted.max(1) as f64
    }
    fn cost(&self) -> f64 {
        self.executions as f64 / self.accepted.max(1) as f64
    }
    fn late_cost(&self) -> f64 {
        self.late_executions as f64 / self.late_accepted.max(1) as f64
    }
    fn never_banned(&self) -> usize {
        self.cheaters - self.runs_to_ban.len()
    }
    fn ban_mean_median(&self) -> Option<(f64, u64)> {
        let mut v = self.runs_to_ban.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let mean = v.iter().sum::<u64>() as f64 / v.len() as f64;
        Some((mean, v[v.len() / 2]))
    }
}

/// One simulated worker.
struct Worker {
    id: PeerId,
    model: Option<Model>,
    runs: u64,
    cache: Option<u64>,
    /// For a sleeper: how many runs it stays honest.
    honest_runs: u64,
    ever_banned: bool,
}

/// A worker's reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Key(VoteKey),
    Timeout,
}

/// The key of job `job`'s output, `tag` 0 being the right one.
fn key(job: u64, tag: u64) -> VoteKey {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&job.to_le_bytes());
    b[8..16].copy_from_slice(&tag.to_le_bytes());
    VoteKey(b)
}

fn right(job: u64) -> Answer {
    Answer::Key(key(job, 0))
}

impl Worker {
    fn new(index: usize, model: Option<Model>, honest_runs: u64) -> Self {
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&(index as u64).to_le_bytes());
        b[31] = 0xA5;
        Self {
            id: PeerId::from_bytes(b),
            model,
            runs: 0,
            cache: None,
            honest_runs,
            ever_banned: false,
        }
    }

    /// `ring_controls`: colluders hold a majority (at least two) of the
    /// replicas of this job placed so far.
    fn answer(
        &mut self,
        job: u64,
        index: usize,
        ring_controls: bool,
        p: &Params,
        rng: &mut StdRng,
    ) -> Answer {
        self.runs += 1;
        let wrong = Answer::Key(key(job, 1 + index as u64));
        match self.model {
            None if rng.gen_bool(p.honest_timeout) => Answer::Timeout,
            None => right(job),
            Some(Model::AlwaysWrong) => wrong,
            Some(Model::Sometimes) if rng.gen_bool(p.wrong_p) => wrong,
            Some(Model::Sometimes) => right(job),
            Some(Model::Sleeper) if self.runs > self.honest_runs => wrong,
            Some(Model::Sleeper) => right(job),
            Some(Model::Colluder) => Answer::Key(key(job, u64::MAX)),
            Some(Model::CarefulColluder) if ring_controls => Answer::Key(key(job, u64::MAX)),
            Some(Model::CarefulColluder) => right(job),
            Some(Model::Lazy) => match self.cache {
                Some(cached) if !rng.gen_bool(p.lazy_runs) => right(cached),
                _ => {
                    self.cache = Some(job);
                    right(job)
                }
            },
            Some(Model::Timeout) if rng.gen_bool(p.timeout_rate) => Answer::Timeout,
            Some(Model::Timeout) => right(job),
        }
    }
}

/// Peer ids carry the worker's index in their first 8 bytes.
fn index_of(peer: &PeerId) -> usize {
    let mut b = [0u8; 8];
    b.copy_from_slice(&peer.as_bytes()[..8]);
    u64::from_le_bytes(b) as usize
}

/// A set of worker indexes with O(1) insert, remove and uniform sampling.
struct Pool {
    items: Vec<usize>,
    slot: Vec<Option<usize>>,
}

impl Pool {
    fn new(n: usize, full: bool) -> Self {
        if full {
            Self {
                items: (0..n).collect(),
                slot: (0..n).map(Some).collect(),
            }
        } else {
            Self {
                items: Vec::new(),
                slot: vec![None; n],
            }
        }
    }
    fn insert(&mut self, w: usize) {
        if self.slot[w].is_none() {
            self.slot[w] = Some(self.items.len());
            self.items.push(w);
        }
    }
    fn remove(&mut self, w: usize) {
        if let Some(i) = self.slot[w].take() {
            self.items.swap_remove(i);
            if let Some(&moved) = self.items.get(i) {
                self.slot[moved] = Some(i);
            }
        }
    }
    fn sample(&self, rng: &mut StdRng) -> Option<usize> {
        self.items.choose(rng).copied()
    }
    /// Up to `n` distinct members in random order.
    fn sample_distinct(&self, n: usize, rng: &mut StdRng) -> Vec<usize> {
        self.items.choose_multiple(rng, n).copied().collect()
    }
}

/// The simulated grid of one scenario.
struct Grid<'a> {
    p: &'a Params,
    rng: StdRng,
    workers: Vec<Worker>,
    reputation: Reputation,
    spots: SpotChecks,
    active: Pool,
    banned: Pool,
    stats: Stats,
    next_quiz: u64,
}

impl<'a> Grid<'a> {
    fn new(p: &'a Params, model: Option<Model>, fraction: f64) -> Self {
        let cheaters = (p.workers as f64 * fraction).round() as usize;
        let model_tag = model.map_or(0, |m| m as u64 + 1);
        let seed = p.seed ^ (model_tag << 32) ^ (fraction * 1000.0) as u64;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut kinds: Vec<Option<Model>> = (0..p.workers)
            .map(|i| if i < cheaters { model } else { None })
            .collect();
        kinds.shuffle(&mut rng);
        let workers: Vec<Worker> = kinds
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                let honest_runs = rng.gen_range(p.sleeper_after..=3 * p.sleeper_after);
                Worker::new(i, m, honest_runs)
            })
            .collect();
        Self {
            p,
            rng,
            workers,
            reputation: Reputation::new(p.reputation.clone()),
            spots: SpotChecks::new(p.spot.clone()),
            active: Pool::new(p.workers, true),
            banned: Pool::new(p.workers, false),
            stats: Stats {
                cheaters,
                ..Stats::default()
            },
            next_quiz: 1 << 62,
        }
    }

    fn run(mut self) -> Stats {
        for job in 0..self.p.jobs {
            let late = job >= self.p.jobs / 2;
            let before = self.stats.executions;
            self.job(job, job * 100);
            if late {
                self.stats.late_executions += self.stats.executions - before;
            }
        }
        self.stats.honest_still_banned = self
            .workers
            .iter()
            .filter(|w| w.model.is_none() && self.reputation.is_banned(&w.id))
            .count();
        self.stats
    }

    /// Applies one observation and keeps the pools in step with bans.
    fn observe(&mut self, w: usize, obs: Observation, now: u64) {
        let change = self.reputation.observe(self.workers[w].id, obs, now);
        self.apply(w, change);
    }

    fn apply(&mut self, w: usize, change: Option<Change>) {
        match change {
            Some(Change::Banned) => {
                self.active.remove(w);
                self.banned.insert(w);
                let worker = &mut self.workers[w];
                if !worker.ever_banned {
                    worker.ever_banned = true;
                    match worker.model {
                        Some(_) => self.stats.runs_to_ban.push(worker.runs),
                        None => self.stats.honest_banned += 1,
                    }
                }
            }
            Some(Change::Unbanned) => {
                self.banned.remove(w);
                self.active.insert(w);
            }
            None => {}
        }
    }

    /// Sends worker `w` a quiz job whose answer is known, and scores it.
    fn spot_check(&mut self, w: usize, now: u64) {
        let quiz = self.next_quiz;
        self.next_quiz += 1;
        self.spot_check_with(w, quiz, false, now);
    }

    fn spot_check_with(&mut self, w: usize, quiz: u64, ring_controls: bool, now: u64) {
        self.stats.executions += 1;
        self.stats.spot_checks += 1;
        let p = self.p;
        match self.workers[w].answer(quiz, w, ring_controls, p, &mut self.rng) {
            Answer::Timeout => self.observe(w, Observation::TimedOut, now),
            answer => {
                let id = self.workers[w].id;
                let matched = answer == right(quiz);
                let change = self
                    .spots
                    .score_spot_check(&mut self.reputation, id, matched, now);
                self.apply(w, change);
            }
        }
    }

    /// Schedules, runs and decides one job.
    fn job(&mut self, job: u64, now: u64) {
        // A banned worker asking for work gets a spot-check, nothing else.
        if self.rng.gen_bool(self.p.recovery_offer)
            && let Some(w) = self.banned.sample(&mut self.rng)
        {
            let draw = self.rng.r#gen::<f64>();
            if self
                .spots
                .should_spot_check(&self.reputation, &self.workers[w].id, draw)
            {
                self.spot_check(w, now);
            }
        }
        let candidates = self
            .active
            .sample_distinct(self.p.adaptive.max_replicas, &mut self.rng);
        if candidates.is_empty() {
            self.stats.no_quorum += 1;
            return;
        }
        let standings: Vec<_> = candidates
            .iter()
            .map(|&w| self.reputation.standing(&self.workers[w].id))
            .collect();
        let mut verification = JobVerification::new(self.p.adaptive.clone());
        let plan = verification.plan(&standings, self.rng.r#gen::<f64>());
        let mut next = 0;
        let mut to_place = plan.replicas;
        let mut on_job = Vec::new();
        let decision = loop {
            let batch_start = on_job.len();
            for _ in 0..to_place {
                let Some(&w) = candidates.get(next) else {
                    break;
                };
                next += 1;
                if self.place(&mut verification, w, now) {
                    on_job.push(w);
                }
            }
            // Replicas of one batch run at once: a colluding ring sees how
            // many of its members the job landed on before answering.
            let ring = on_job
                .iter()
                .filter(|&&w| self.workers[w].model == Some(Model::CarefulColluder))
                .count();
            let ring_controls = ring >= 2 && ring * 2 > on_job.len();
            for &w in &on_job[batch_start..] {
                self.run_replica(&mut verification, w, job, ring_controls, now);
            }
            match verification.decide() {
                Decision::NeedMore(n) if next < candidates.len() => to_place = n,
                Decision::NeedMore(_) | Decision::Wait => break Decision::NoQuorum,
                d => break d,
            }
        };
        let late = job >= self.p.jobs / 2;
        match decision {
            Decision::Accept(k) => {
                self.stats.accepted += 1;
                if late {
                    self.stats.late_accepted += 1;
                }
                let alone = verification.votes().len() == 1;
                if alone {
                    self.stats.alone += 1;
                }
                if k != key(job, 0) {
                    self.stats.wrong_accepted += 1;
                    if alone && plan.reason == PlanReason::TrustedAlone {
                        self.stats.wrong_alone += 1;
                    }
                }
                for (peer, obs) in verification.observations(&k) {
                    self.observe(index_of(&peer), obs, now);
                }
            }
            _ => self.stats.no_quorum += 1,
        }
    }

    /// Places one replica on worker `w`, after a spot-check if the policy
    /// says so; false if `w` cannot take it (banned by that check).
    fn place(&mut self, verification: &mut JobVerification, w: usize, now: u64) -> bool {
        let id = self.workers[w].id;
        let draw = self.rng.r#gen::<f64>();
        if self.spots.should_spot_check(&self.reputation, &id, draw) {
            self.spot_check(w, now);
        }
        !self.reputation.is_banned(&id) && verification.placed(id)
    }

    /// Runs worker `w`'s replica and records its answer.
    fn run_replica(
        &mut self,
        verification: &mut JobVerification,
        w: usize,
        job: u64,
        ring_controls: bool,
        now: u64,
    ) {
        let id = self.workers[w].id;
        self.stats.executions += 1;
        let p = self.p;
        match self.workers[w].answer(job, w, ring_controls, p, &mut self.rng) {
            Answer::Timeout => {
                verification.failed(id);
                self.observe(w, Observation::TimedOut, now);
            }
            Answer::Key(k) => {
                let standing = self.reputation.standing(&id);
                verification.vote(id, k, &standing);
            }
        }
    }
}

/// One row of the table.
fn row(p: &Params, model: Option<Model>, fraction: f64, s: &Stats) -> String {
    let name = model.map_or_else(|| "none".to_string(), |m| m.name(p));
    let ban = s.ban_mean_median().map_or_else(
        || "–".to_string(),
        |(mean, med)| format!("{mean:.1} / {med}"),
    );
    format!(
        "| {:>3.0}% | {} | {} ({}) | {:.1e} | {:.3} | {:.3} | {:.1}% | {} | {} | {} / {} | {} ({}) |",
        fraction * 100.0,
        name,
        s.wrong_accepted,
        s.wrong_alone,
        s.wrong_rate(),
        s.cost(),
        s.late_cost(),
        100.0 * s.alone as f64 / s.accepted.max(1) as f64,
        s.no_quorum,
        ban,
        s.never_banned(),
        s.cheaters,
        s.honest_banned,
        s.honest_still_banned,
    )
}

fn scenarios() -> Vec<(Option<Model>, f64)> {
    let mut v = vec![(None, 0.0)];
    for model in Model::ALL {
        for fraction in [0.10, 0.20, 0.33] {
            v.push((Some(model), fraction));
        }
    }
    v
}

fn simulate(p: &Params, model: Option<Model>, fraction: f64) -> Stats {
    Grid::new(p, model, fraction).run()
}

fn parse_args() -> Result<Params, String> {
    let mut p = Params::default();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{flag} needs a value"))?
                .parse::<f64>()
                .map_err(|e| format!("{flag}: {e}"))
        };
        match flag.as_str() {
            "--workers" => p.workers = value()? as usize,
            "--jobs" => p.jobs = value()? as u64,
            "--seed" => p.seed = value()? as u64,
            "--epsilon" => p.adaptive.epsilon = value()?,
            "--min-valid" => p.reputation.established_streak = value()? as u64,
            "--min-trust" => p.reputation.established_trust = value()?,
            "--established-decay" => p.reputation.established_decay = value()?,
            "--min-reverify" => p.adaptive.min_reverify = value()?,
            "--spot" => p.spot.probability = value()?,
            "--newcomer-spot" => p.spot.newcomer_probability = value()?,
            "--recovery-offer" => p.recovery_offer = value()?,
            "--fault-prior" => p.reputation.fault_prior = value()?,
            "--fault-prior-weight" => p.reputation.fault_prior_weight = value()?,
            "--population-decay" => p.reputation.population_decay = value()?,
            "--dissent-weight" => p.reputation.dissent_weight = value()?,
            "--ban-below" => p.reputation.ban_below = value()?,
            "--decay" => p.reputation.decay = value()?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(p)
}

fn main() -> ExitCode {
    let p = match parse_args() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("simulate: {e}\nusage: simulate [--workers N] [--jobs N] [--seed N]");
            return ExitCode::from(2);
        }
    };
    let started = std::time::Instant::now();
    let list = scenarios();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(2));
    let mut results: Vec<Option<Stats>> = vec![None; list.len()];
    std::thread::scope(|scope| {
        let chunks: Vec<_> = results.chunks_mut(list.len().div_ceil(threads)).collect();
        let mut start = 0;
        for chunk in chunks {
            let list = &list;
            let p = &p;
            let from = start;
            start += chunk.len();
            scope.spawn(move || {
                for (i, slot) in chunk.iter_mut().enumerate() {
                    let (model, fraction) = list[from + i];
                    *slot = Some(simulate(p, model, fraction));
                }
            });
        }
    });
    println!(
        "{} workers, {} jobs per scenario, seed {}, ε = {:e}, spot-check probability {} (newcomers {})\n",
        p.workers,
        p.jobs,
        p.seed,
        p.adaptive.epsilon,
        p.spot.probability,
        p.spot.newcomer_probability
    );
    println!(
        "| cheaters | model | wrong accepted (alone) | wrong rate | exec/job | exec/job, 2nd half | run alone | no quorum | runs until ban, mean / median | never banned / cheaters | honest banned (still at end) |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for ((model, fraction), stats) in list.iter().zip(&results) {
        if let Some(s) = stats {
            println!("{}", row(&p, *model, *fraction, s));
        }
    }
    eprintln!("simulated in {:.1} s", started.elapsed().as_secs_f64());
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Params {
        Params {
            workers: 200,
            jobs: 5_000,
            ..Params::default()
        }
    }

    #[test]
    fn honest_grid_is_cheap_and_bans_nobody() {
        let s = simulate(&small(), None, 0.0);
        assert_eq!(s.wrong_accepted, 0);
        assert_eq!(s.honest_banned, 0);
        assert!(s.late_cost() < 1.5, "late cost {}", s.late_cost());
        assert!(s.accepted > 4_900);
    }

    #[test]
    fn cheaters_are_caught_and_rarely_win() {
        let p = small();
        for model in [Model::AlwaysWrong, Model::Colluder, Model::Lazy] {
            let s = simulate(&p, Some(model), 0.2);
            assert_eq!(s.honest_banned, 0, "{model:?}");
            assert!(s.wrong_rate() < 1e-2, "{model:?}: {}", s.wrong_rate());
            assert!(s.cost() < 4.0, "{model:?}: {}", s.cost());
            assert!(s.never_banned() < s.cheaters / 4, "{model:?}");
        }
    }

    #[test]
    fn same_seed_same_numbers() {
        let p = Params {
            workers: 100,
            jobs: 1_000,
            ..Params::default()
        };
        let a = simulate(&p, Some(Model::Sometimes), 0.2);
        let b = simulate(&p, Some(Model::Sometimes), 0.2);
        assert_eq!(
            (a.executions, a.wrong_accepted, a.runs_to_ban),
            (b.executions, b.wrong_accepted, b.runs_to_ban)
        );
    }
}
