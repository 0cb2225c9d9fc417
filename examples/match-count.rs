//! Matches the KVM fixtures (`tests/fixtures/reference-config/kvm-test.specs`
//! against `tests/fixtures/hw/kvm-test-vm.hw`) N times, N the first
//! argument: the driver `scripts/bench-instructions` runs under callgrind
//! twice (1 and 1001 times) to count the instructions of one match,
//! which do not depend on the machine's load.

use edeploy::hw::{self, Line};
use edeploy::matcher::Specs;
use std::hint::black_box;
use std::path::Path;

fn fixture(rel: &str) -> Vec<Line> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: cannot read: {e}", path.display()));
    hw::parse(&text, &path.display().to_string()).unwrap_or_else(|e| panic!("{e}"))
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("usage: match-count N"));
    let specs = Specs::compile(&fixture("tests/fixtures/reference-config/kvm-test.specs"))
        .expect("kvm-test.specs compiles");
    let hw = fixture("tests/fixtures/hw/kvm-test-vm.hw");
    for _ in 0..n {
        black_box(specs.find(black_box(&hw)).is_ok());
    }
}
