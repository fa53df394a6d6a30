//! Planning cost: load + validate + DAG + render every request, from a plan file.
//!
//! This is what `baton plan` and the start of `baton run` do before JOB sees anything:
//! read and parse the YAML, run every static check (which itself renders each step
//! once), take the waves of the DAG, then for every step render its templates and
//! encode its v3 request. Plans of 1k, 10k and 50k steps in three shapes (see
//! `plan_gen`) are written to temp files before timing; the timed loop starts from the
//! path. Only the 1k size runs when criterion is in test mode (`cargo test
//! --all-targets` passes no `--bench`), so CI stays fast; `BATON_BENCH_SIZES=1000,10000`
//! picks sizes explicitly.

mod plan_gen;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use plan_gen::Shape;

/// Sizes for this run: all three under `cargo bench`, only 1k in test mode.
fn sizes() -> Vec<usize> {
    if let Ok(list) = std::env::var("BATON_BENCH_SIZES") {
        return list
            .split(',')
            .filter_map(|s| s.trim().parse().ok())
            .collect();
    }
    if std::env::args().any(|a| a == "--bench") {
        vec![1_000, 10_000, 50_000]
    } else {
        vec![1_000]
    }
}

fn planning(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let options = plan_gen::validate_options();
    let mut group = c.benchmark_group("plan");
    for n in sizes() {
        // Big plans take seconds per iteration: few samples, short warm-up, so a full
        // run stays within minutes on a shared 2-core machine.
        if n >= 10_000 {
            group.sample_size(10);
            group.warm_up_time(Duration::from_secs(1));
            group.measurement_time(Duration::from_secs(if n >= 50_000 { 20 } else { 8 }));
        } else {
            group.sample_size(20);
            group.warm_up_time(Duration::from_secs(1));
            group.measurement_time(Duration::from_secs(4));
        }
        group.throughput(Throughput::Elements(n as u64));
        for shape in Shape::ALL {
            let path = dir.path().join(format!("{}-{n}.yaml", shape.name()));
            std::fs::write(&path, plan_gen::plan_yaml(shape, n)).expect("write plan");
            // Fail fast (and in test mode, check the generator) before timing.
            assert_eq!(plan_gen::plan_requests(&path, &options).len(), n);
            group.bench_with_input(BenchmarkId::new(shape.name(), n), &path, |b, path| {
                b.iter(|| plan_gen::plan_requests(black_box(path), &options));
            });
        }
    }
    group.finish();
}

criterion_group!(benches, planning);
criterion_main!(benches);
