//! Criterion benchmarks of the pure-Rust TRACE core: sealing records into a
//! chain (what the flush thread does per event), the event hash alone, and
//! verification of a chain in memory and of a `.trace.jsonl` stream.
//!
//! Run: `cargo bench --bench trace_core` (about a minute).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use cra_core::ids::new_v7;
use cra_core::trace::chain::{Body, ChainStart, Chains, Record, SpanRef};
use cra_core::trace::event::TraceEvent;
use cra_core::trace::hash::HashAlgorithm;
use cra_core::trace::merkle::{self, Accumulator};
use cra_core::trace::verify::ChainVerifier;
use cra_core::trace::verify_file::verify_reader;

/// Records per iteration: the flush thread's default batch size.
const BATCH: usize = 4096;
/// Events in the chains the verification benchmarks walk.
const CHAIN: usize = 10_000;
/// Leaves of the Merkle tree benchmarks (events of one long session).
const MERKLE_LEAVES: usize = 1_000_000;
/// 2026-01-01T00:00:00Z in microseconds.
const T0: i64 = 1_767_225_600_000_000;
/// The payload the Python benchmarks record (`{"k": 1}`), already canonical.
const PAYLOAD: &str = r#"{"k":1}"#;

const ALGORITHMS: [HashAlgorithm; 2] = [HashAlgorithm::Sha256, HashAlgorithm::Blake3];

/// One session's records as callers push them: the first opens the chain.
fn records(n: usize) -> Vec<Record> {
    let session_id = new_v7(T0);
    (0..n)
        .map(|i| Record {
            session_id,
            span: SpanRef::Fresh,
            micros: T0 + i as i64,
            body: Body::One("x.tool.call".into(), PAYLOAD.into()),
            start: (i == 0).then(|| {
                Box::new(ChainStart {
                    trace_id: new_v7(T0),
                    root_span: new_v7(T0),
                    next_sequence: 0,
                    previous_hash: [0; 32],
                })
            }),
            ends_chain: false,
        })
        .collect()
}

fn chain(algorithm: HashAlgorithm, n: usize) -> Vec<Arc<TraceEvent>> {
    let mut chains = Chains::new(algorithm, None);
    let mut out = Vec::with_capacity(n);
    for r in records(n) {
        chains.seal(r, &mut out);
    }
    assert_eq!(out.len(), n, "the first record opens the chain");
    out
}

fn jsonl(events: &[Arc<TraceEvent>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(events.len() * 420);
    for e in events {
        e.write_json(&mut out);
        out.push(b'\n');
    }
    out
}

/// `Chains::seal`: number, mint ids, format the timestamp, hash, link.
fn seal(c: &mut Criterion) {
    let mut group = c.benchmark_group("seal");
    group.throughput(Throughput::Elements(BATCH as u64));
    for alg in ALGORITHMS {
        group.bench_function(alg.as_str(), |b| {
            b.iter_batched(
                || records(BATCH),
                |recs| {
                    // As the flush thread does: sealed events go to a batch.
                    let mut chains = Chains::new(alg, None);
                    let mut batch = Vec::with_capacity(BATCH);
                    for r in recs {
                        chains.seal(r, &mut batch);
                    }
                    batch
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

/// The event hash alone (`TraceEvent::compute_hash`), for comparison with `seal`.
fn event_hash(c: &mut Criterion) {
    let mut group = c.benchmark_group("event_hash");
    group.throughput(Throughput::Elements(BATCH as u64));
    for alg in ALGORITHMS {
        let events = chain(alg, BATCH);
        group.bench_function(alg.as_str(), |b| {
            b.iter(|| {
                for e in &events {
                    black_box(e.compute_hash(alg));
                }
            })
        });
    }
    group.finish();
}

/// `ChainVerifier` over a chain of sealed events (what `rt.verify()` runs).
fn verify_chain(c: &mut Criterion) {
    let mut group = c.benchmark_group("verify_chain");
    group.throughput(Throughput::Elements(CHAIN as u64));
    for alg in ALGORITHMS {
        let events = chain(alg, CHAIN);
        group.bench_function(alg.as_str(), |b| {
            b.iter(|| {
                let mut v = ChainVerifier::new();
                for e in &events {
                    e.with_text(|t| v.push(t, None));
                }
                let result = v.finish();
                assert!(result.valid());
                result
            })
        });
    }
    group.finish();
}

/// `verify_reader` over JSON Lines held in memory (parsing included).
fn verify_jsonl(c: &mut Criterion) {
    let mut group = c.benchmark_group("verify_reader");
    group.throughput(Throughput::Elements(CHAIN as u64));
    for alg in ALGORITHMS {
        let bytes = jsonl(&chain(alg, CHAIN));
        group.bench_function(alg.as_str(), |b| {
            b.iter(|| {
                let report = verify_reader(&bytes[..], &mut |_| {}).expect("in-memory reader");
                assert!(report.valid());
                report
            })
        });
    }
    group.finish();
}

/// The RFC 6962 tree over a session's event hashes: the root and one
/// inclusion proof over a million leaves, and the flush thread's cost per
/// event (`Accumulator::push`, amortised over a batch).
fn merkle_tree(c: &mut Criterion) {
    // Stand-ins for event hashes: any distinct 32 bytes will do.
    let leaves: Vec<[u8; 32]> = (0..MERKLE_LEAVES as u64)
        .map(|i| merkle::leaf_hash(&i.to_le_bytes()))
        .collect();
    let mut group = c.benchmark_group("merkle");
    group.sample_size(10);
    group.throughput(Throughput::Elements(MERKLE_LEAVES as u64));
    group.bench_function("root_1m", |b| b.iter(|| merkle::root(black_box(&leaves))));
    let index = MERKLE_LEAVES as u64 / 3;
    group.bench_function("inclusion_proof_1m", |b| {
        b.iter(|| merkle::inclusion_proof(black_box(index), &leaves).expect("in range"))
    });
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);
    group.bench_function("accumulator_push", |b| {
        b.iter(|| {
            let mut acc = Accumulator::new();
            for leaf in &leaves[..BATCH] {
                acc.push(leaf);
            }
            acc.root()
        })
    });
    group.finish();
}

/// `Chains::seal` with signed checkpoints at the default policy (one per
/// 1,000 events): the Merkle leaf per event plus an Ed25519 signature per
/// checkpoint, against `seal` without them.
fn seal_signed(c: &mut Criterion) {
    use cra_core::trace::chain::Checkpointing;
    use cra_core::trace::checkpoint::CheckpointPolicy;
    use cra_core::trace::signing::CheckpointSigner;
    let signer = CheckpointSigner::from_key(ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]));
    let cp = Arc::new(Checkpointing {
        signer,
        policy: CheckpointPolicy::default(),
    });
    let mut group = c.benchmark_group("seal_signed");
    group.throughput(Throughput::Elements(BATCH as u64));
    for (name, with) in [("unsigned", None), ("signed_every_1000", Some(cp))] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || records(BATCH),
                |recs| {
                    let mut chains = Chains::new(HashAlgorithm::Sha256, with.clone());
                    let mut batch = Vec::with_capacity(BATCH + BATCH / 1000 + 1);
                    for r in recs {
                        chains.seal(r, &mut batch);
                    }
                    batch
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group! {
    name = trace_core;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = seal, seal_signed, event_hash, verify_chain, verify_jsonl, merkle_tree
}
criterion_main!(trace_core);
