//! Backtracking search for the first pairing of spec lines with distinct
//! hardware lines, in the order documented in the parent module.
//!
//! State is changed in place and undone on backtrack (bindings through a
//! trail). After each assignment every remaining spec line must keep an
//! unused, consistent candidate (forward checking) and the remaining lines
//! must still be able to get pairwise distinct candidates (a bipartite
//! matching kept up to date incrementally). Both checks only reject branches
//! without a solution, so the first solution found is the first in order.

use indexmap::IndexMap;

use super::{format_line, repr_str, Budget, Hardware, Match, Miss, NoMatch, Specs};
use crate::hw::Line;

const NONE: usize = usize::MAX;

/// Receives a description of each search step.
pub(super) trait Tracer {
    fn event(&mut self, make: impl FnOnce() -> String);
}

/// Discards events; building their text is skipped entirely.
pub(super) struct Silent;

impl Tracer for Silent {
    #[inline(always)]
    fn event(&mut self, _make: impl FnOnce() -> String) {}
}

/// Keeps the first `max` events and counts the others.
pub(super) struct Recorder {
    max: usize,
    events: Vec<String>,
    skipped: usize,
}

impl Recorder {
    pub(super) fn new(max: usize) -> Recorder {
        Recorder {
            max,
            events: Vec::new(),
            skipped: 0,
        }
    }

    pub(super) fn finish(mut self) -> Vec<String> {
        if self.skipped > 0 {
            self.events.push(format!("... {} more steps", self.skipped));
        }
        self.events
    }
}

impl Tracer for Recorder {
    fn event(&mut self, make: impl FnOnce() -> String) {
        if self.events.len() < self.max {
            self.events.push(make());
        } else {
            self.skipped += 1;
        }
    }
}

/// Why a branch was abandoned, naming the blocking spec line.
#[derive(Clone, Copy)]
enum Block {
    /// The spec line has no unused hardware line consistent with the
    /// bindings.
    Empty(usize),
    /// Every remaining line has a candidate, but they cannot all get
    /// distinct ones; this line was left without.
    Crowded(usize),
}

impl Block {
    fn spec(self) -> usize {
        match self {
            Block::Empty(k) | Block::Crowded(k) => k,
        }
    }
}

#[derive(Clone, Copy)]
struct Frame {
    spec: usize,
    next: usize,
    via: usize,
}

struct Search<'a, 'h, T: Tracer> {
    specs: &'a Specs,
    hw: &'h [Line],
    tracer: &'a mut T,
    /// Static candidates of spec line `k`: `cand_data[cand_start[k]..cand_start[k + 1]]`.
    cand_data: Vec<usize>,
    cand_start: Vec<usize>,
    used: Vec<bool>,
    binding: Vec<Option<&'h str>>,
    /// Variables in binding order, unbound back to `trail_mark[d]` when spec
    /// line `d` is unassigned.
    trail: Vec<usize>,
    trail_mark: Vec<usize>,
    /// Hardware line assigned to each paired spec line.
    chosen: Vec<usize>,
    /// Next candidate position to try for each spec line.
    next: Vec<usize>,
    /// Matching of remaining spec lines to hardware lines (`NONE` if none).
    mate: Vec<usize>,
    owner: Vec<usize>,
    seen: Vec<u32>,
    stamp: u32,
    stack: Vec<Frame>,
    /// `(depth, block)` of the deepest block seen.
    deepest: Option<(usize, Block)>,
    budget: &'a Budget,
    /// Units of work (candidates looked at) since the clock was last read.
    work: usize,
    /// The budget ran out: every pending step gives up.
    over: bool,
}

/// Units of work between two looks at the clock: a few hundred
/// microseconds.
const WORK_PER_CLOCK: usize = 1 << 14;

pub(super) fn run<T: Tracer>(
    specs: &Specs,
    hw: &[Line],
    index: Option<&Hardware<'_>>,
    tracer: &mut T,
    budget: &Budget,
) -> Result<Match, Miss> {
    let n = specs.compiled.len();
    let mut cand_data = Vec::new();
    let mut cand_start = Vec::with_capacity(n + 1);
    cand_start.push(0);
    for (line, text) in specs.compiled.iter().zip(&specs.lines) {
        // The index only skips lines whose class or key differ from the
        // spec line's literal ones, which could not fit anyway; the order
        // of the candidates stays the list order.
        let narrowed = index.and_then(|ix| ix.narrow(line.literal(text, 0), line.literal(text, 2)));
        match narrowed {
            Some(subset) => cand_data.extend(
                subset
                    .iter()
                    .copied()
                    .filter(|&j| line.fits_statically(text, &hw[j])),
            ),
            None => cand_data.extend(
                hw.iter()
                    .enumerate()
                    .filter(|(_, h)| line.fits_statically(text, h))
                    .map(|(j, _)| j),
            ),
        }
        cand_start.push(cand_data.len());
    }
    let mut search = Search {
        specs,
        hw,
        tracer,
        cand_data,
        cand_start,
        used: vec![false; hw.len()],
        binding: vec![None; specs.vars.len()],
        trail: Vec::new(),
        trail_mark: vec![0; n],
        chosen: vec![NONE; n],
        next: vec![0; n],
        mate: vec![NONE; n],
        owner: vec![NONE; hw.len()],
        seen: vec![0; hw.len()],
        stamp: 0,
        stack: Vec::new(),
        deepest: None,
        budget,
        work: 0,
        over: false,
    };
    match search.search() {
        Ok(()) => {
            search.tracer.event(|| "match found".to_owned());
            Ok(search.result())
        }
        Err(_) if search.over => {
            search.tracer.event(|| "the time budget ran out".to_owned());
            Err(Miss::OverBudget)
        }
        Err(k) => {
            let failure = NoMatch {
                spec_index: k,
                spec: specs.lines[k].clone(),
            };
            search.tracer.event(|| format!("no match: {failure}"));
            Err(Miss::NoMatch(failure))
        }
    }
}

impl<'h, T: Tracer> Search<'_, 'h, T> {
    fn candidates(&self, k: usize) -> &[usize] {
        &self.cand_data[self.cand_start[k]..self.cand_start[k + 1]]
    }

    /// Whether hardware line `j` agrees with the variables already bound
    /// (the rest of spec line `k` was checked statically).
    fn consistent(&self, k: usize, j: usize) -> bool {
        let hw = &self.hw[j];
        self.specs.compiled[k]
            .var_positions
            .iter()
            .all(|&(p, v)| match self.binding[v] {
                Some(bound) => bound == hw[p],
                None => true,
            })
    }

    /// Counts `units` of work; reads the clock now and then. True once the
    /// budget has run out.
    fn spend(&mut self, units: usize) -> bool {
        self.work += units;
        if self.work >= WORK_PER_CLOCK {
            self.work = 0;
            if self.budget.exceeded() {
                self.over = true;
            }
        }
        self.over
    }

    fn viable(&self, k: usize, j: usize) -> bool {
        !self.used[j] && self.consistent(k, j)
    }

    /// Returns `Ok` once all spec lines are paired (see `chosen`), or the
    /// spec line to report.
    fn search(&mut self) -> Result<(), usize> {
        let (specs, hw) = (self.specs, self.hw);
        let n = self.specs.compiled.len();
        if n == 0 {
            return Ok(());
        }
        if let Some(k) = (0..n).find(|&k| self.candidates(k).is_empty()) {
            self.tracer
                .event(|| format!("{} fits no hardware line at all", spec_text(specs, k)));
            return Err(k);
        }
        if let Err(block) = self.propagate(0) {
            if self.over {
                return Err(0);
            }
            self.note_block(0, block);
            return Err(self.blocker());
        }
        let mut d = 0;
        loop {
            if self.spend(1) {
                return Err(d);
            }
            match self.next_viable(d) {
                Some(idx) => {
                    let j = self.candidates(d)[idx];
                    self.next[d] = idx + 1;
                    self.tracer
                        .event(|| format!("try {} with {}", spec_text(specs, d), hw_text(hw, j)));
                    self.assign(d, j);
                    match self.propagate(d + 1) {
                        Ok(()) if d + 1 == n => return Ok(()),
                        Ok(()) => {
                            d += 1;
                            self.next[d] = 0;
                        }
                        Err(block) => {
                            self.note_block(d + 1, block);
                            self.unassign(d);
                        }
                    }
                }
                None => {
                    if self.next[d] == 0 {
                        // Never reached after a successful propagation, kept
                        // so that the failure report stays well defined.
                        self.note_block(d, Block::Empty(d));
                    }
                    self.tracer.event(|| {
                        format!("{} has no hardware line left to try", spec_text(specs, d))
                    });
                    if d == 0 {
                        return Err(self.blocker());
                    }
                    d -= 1;
                    self.tracer
                        .event(|| format!("backtrack to {}", spec_text(specs, d)));
                    self.unassign(d);
                }
            }
        }
    }

    fn next_viable(&self, d: usize) -> Option<usize> {
        let cands = self.candidates(d);
        (self.next[d]..cands.len()).find(|&idx| self.viable(d, cands[idx]))
    }

    fn assign(&mut self, d: usize, j: usize) {
        self.used[j] = true;
        self.chosen[d] = j;
        self.trail_mark[d] = self.trail.len();
        let m = self.mate[d];
        if m != NONE {
            self.owner[m] = NONE;
            self.mate[d] = NONE;
        }
        let hw: &'h Line = &self.hw[j];
        for &(p, v) in &self.specs.compiled[d].var_positions {
            if self.binding[v].is_none() {
                self.binding[v] = Some(hw[p].as_str());
                self.trail.push(v);
                self.tracer.event(|| {
                    format!(
                        "  bind {} = {}",
                        self.specs.vars[v].spelling(),
                        repr_str(&hw[p])
                    )
                });
            }
        }
    }

    fn unassign(&mut self, d: usize) {
        self.used[self.chosen[d]] = false;
        self.chosen[d] = NONE;
        while self.trail.len() > self.trail_mark[d] {
            if let Some(v) = self.trail.pop() {
                self.binding[v] = None;
            }
        }
    }

    /// Checks that spec lines `first..` can still be paired, given the
    /// assignments and bindings so far.
    fn propagate(&mut self, first: usize) -> Result<(), Block> {
        let specs = self.specs;
        let n = self.specs.compiled.len();
        // Drop matching pairs invalidated by the last assignment.
        for k in first..n {
            let m = self.mate[k];
            if m != NONE && !self.viable(k, m) {
                self.owner[m] = NONE;
                self.mate[k] = NONE;
            }
        }
        // A matched line has a candidate; only the others need a scan.
        for k in first..n {
            if self.spend(self.candidates(k).len()) {
                return Err(Block::Empty(k));
            }
            if self.mate[k] == NONE && !self.candidates(k).iter().any(|&j| self.viable(k, j)) {
                self.tracer.event(|| {
                    format!(
                        "  prune: {} has no unused hardware line consistent with the bindings",
                        spec_text(specs, k)
                    )
                });
                return Err(Block::Empty(k));
            }
        }
        for k in first..n {
            if self.spend(self.candidates(k).len()) {
                return Err(Block::Empty(k));
            }
            if self.mate[k] == NONE && !self.augment(k) {
                self.tracer.event(|| {
                    format!(
                        "  prune: spec lines {}..{} cannot all get distinct hardware lines, {} is left without",
                        first + 1,
                        n,
                        spec_text(specs, k)
                    )
                });
                return Err(Block::Crowded(k));
            }
        }
        Ok(())
    }

    /// Looks for an augmenting path from spec line `root` (Kuhn's
    /// algorithm), iteratively so that long spec lists cannot overflow the
    /// stack.
    fn augment(&mut self, root: usize) -> bool {
        if self.stamp == u32::MAX {
            self.seen.fill(0);
            self.stamp = 0;
        }
        self.stamp += 1;
        let mut stack = std::mem::take(&mut self.stack);
        stack.clear();
        stack.push(Frame {
            spec: root,
            next: self.cand_start[root],
            via: NONE,
        });
        let found = loop {
            let Some(top) = stack.last_mut() else {
                break false;
            };
            let k = top.spec;
            let end = self.cand_start[k + 1];
            let mut step = NONE;
            while top.next < end {
                let j = self.cand_data[top.next];
                top.next += 1;
                if self.seen[j] != self.stamp && self.viable(k, j) {
                    self.seen[j] = self.stamp;
                    step = j;
                    break;
                }
            }
            if step == NONE {
                stack.pop();
                continue;
            }
            top.via = step;
            let holder = self.owner[step];
            if holder == NONE {
                break true;
            }
            stack.push(Frame {
                spec: holder,
                next: self.cand_start[holder],
                via: NONE,
            });
        };
        if found {
            for frame in &stack {
                self.mate[frame.spec] = frame.via;
                self.owner[frame.via] = frame.spec;
            }
        }
        self.stack = stack;
        found
    }

    fn note_block(&mut self, depth: usize, block: Block) {
        let deeper = match self.deepest {
            Some((seen, _)) => depth > seen,
            None => true,
        };
        if deeper {
            self.deepest = Some((depth, block));
        }
    }

    fn blocker(&self) -> usize {
        self.deepest.map_or(0, |(_, block)| block.spec())
    }

    fn result(&self) -> Match {
        let mut vars = IndexMap::new();
        let mut forced = IndexMap::new();
        for &v in &self.trail {
            let (Some(value), info) = (self.binding[v], &self.specs.vars[v]) else {
                continue;
            };
            if info.forced {
                forced.insert(info.name.clone(), value.to_owned());
                vars.insert(info.name.clone(), value.to_owned());
            } else if !forced.contains_key(&info.name) {
                vars.insert(info.name.clone(), value.to_owned());
            }
        }
        Match {
            vars,
            forced,
            pairing: self.chosen.clone(),
        }
    }
}

fn spec_text(specs: &Specs, k: usize) -> String {
    format!("spec line {} {}", k + 1, format_line(&specs.lines[k]))
}

fn hw_text(hw: &[Line], j: usize) -> String {
    format!("hardware line {} {}", j + 1, format_line(&hw[j]))
}
