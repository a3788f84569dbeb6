//! The RFC 6962 Merkle tree over a session's event hashes: roots, a compact
//! accumulator for the flush thread, inclusion and consistency proofs and
//! their verification (RFC 9162 §2.1.3–2.1.4). Always SHA-256, whatever
//! hash algorithm the chain uses; see `specs/merkle.md`.
//!
//! A leaf's *data* is the 32 raw bytes of an event's `event_hash`, leaves in
//! sequence order. Leaf hash: SHA-256(0x00 ‖ data); node hash:
//! SHA-256(0x01 ‖ left ‖ right); the empty tree's root: SHA-256 of nothing.
//! Tree sizes and leaf indexes are `u64`; proofs list hashes from the leaf
//! (or the lowest level) up to the root.

use sha2::{Digest, Sha256};

/// A SHA-256 digest: a leaf hash, a node hash or a root.
pub type Hash = [u8; 32];

/// The root of the empty tree: SHA-256 of the empty string.
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// Why a proof could not be made or did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MerkleError {
    #[error("leaf index {index} is not below the tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("tree size {size} is larger than the {have} leaves given")]
    TooFewLeaves { size: u64, have: u64 },
    #[error("a consistency proof needs 0 < first size <= second size, got {first} and {second}")]
    BadSizes { first: u64, second: u64 },
    #[error("the proof has more hashes than the tree sizes allow")]
    ProofTooLong,
    #[error("the proof has fewer hashes than the tree sizes need")]
    ProofTooShort,
    #[error("the proof does not lead to the given root")]
    RootMismatch,
    #[error("the proof does not lead to the given first root")]
    FirstRootMismatch,
}

/// SHA-256(0x00 ‖ data): the hash of one leaf.
pub fn leaf_hash(data: &[u8]) -> Hash {
    Sha256::new()
        .chain_update([0x00])
        .chain_update(data)
        .finalize()
        .into()
}

/// SHA-256(0x01 ‖ left ‖ right): the hash of an inner node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut buf = [0u8; 65];
    buf[0] = 0x01;
    buf[1..33].copy_from_slice(left);
    buf[33..].copy_from_slice(right);
    Sha256::digest(buf).into()
}

/// The root of the tree whose leaves' data are `leaves` (event hashes in
/// sequence order). O(n) hashing, O(log n) memory.
pub fn root(leaves: &[[u8; 32]]) -> Hash {
    range_root(&|i| leaf_hash(&leaves[i]), 0, leaves.len())
}

/// The root of the tree whose leaf *hashes* are given (leaf data of any
/// length, hashed by the caller with [`leaf_hash`]).
pub fn root_of_leaf_hashes(hashes: &[Hash]) -> Hash {
    range_root(&|i| hashes[i], 0, hashes.len())
}

/// A compact range from 0: the roots of the perfect subtrees a tree of
/// `size` leaves splits into, largest (leftmost) first — one per set bit of
/// `size`, so at most 64 hashes. `push` costs one leaf hash and amortised
/// one node hash; `root` folds the frontier in O(log n).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accumulator {
    size: u64,
    frontier: Vec<Hash>,
}

impl Accumulator {
    pub fn new() -> Self {
        Self::default()
    }

    /// An accumulator resumed from a stored `size` and `frontier` (as
    /// [`Accumulator::frontier`] gave them); `None` when the frontier does
    /// not hold one hash per set bit of `size`.
    pub fn from_frontier(size: u64, frontier: Vec<Hash>) -> Option<Self> {
        (frontier.len() == size.count_ones() as usize).then_some(Self { size, frontier })
    }

    /// Appends a leaf given by its data (an event's 32 raw hash bytes).
    pub fn push(&mut self, leaf_data: &[u8]) {
        self.push_leaf_hash(leaf_hash(leaf_data));
    }

    /// Appends a leaf given by its leaf hash.
    pub fn push_leaf_hash(&mut self, hash: Hash) {
        let mut hash = hash;
        let mut size = self.size;
        // Each trailing one bit of the old size is a perfect subtree of the
        // same height as the carry: merge them, as in binary addition.
        while size & 1 == 1 {
            let left = self.frontier.pop().expect("one hash per set bit of size");
            hash = node_hash(&left, &hash);
            size >>= 1;
        }
        self.frontier.push(hash);
        self.size += 1;
    }

    /// The number of leaves pushed.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The roots of the perfect subtrees, largest first.
    pub fn frontier(&self) -> &[Hash] {
        &self.frontier
    }

    /// The tree's root, equal to [`root`] over the same leaves.
    pub fn root(&self) -> Hash {
        let mut hashes = self.frontier.iter().rev();
        let Some(last) = hashes.next() else {
            return EMPTY_ROOT;
        };
        hashes.fold(*last, |right, left| node_hash(left, &right))
    }
}

/// The largest power of two below `n` (`n >= 2`): where RFC 6962 splits a
/// tree of `n` leaves.
fn split(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// The root of the subtree over leaves `lo..hi`, leaf hashes from `leaf`.
fn range_root(leaf: &dyn Fn(usize) -> Hash, lo: usize, hi: usize) -> Hash {
    let mut acc = Accumulator::new();
    for i in lo..hi {
        acc.push_leaf_hash(leaf(i));
    }
    acc.root()
}

fn check_size(size: u64, have: usize) -> Result<usize, MerkleError> {
    match usize::try_from(size) {
        Ok(s) if s <= have => Ok(s),
        _ => Err(MerkleError::TooFewLeaves {
            size,
            have: have as u64,
        }),
    }
}

/// The audit path of leaf `index` in the tree of all `leaves` (leaf data,
/// event hashes), lowest level first (RFC 6962 PATH). Hashes every leaf
/// outside the path once and nothing twice.
pub fn inclusion_proof(index: u64, leaves: &[[u8; 32]]) -> Result<Vec<Hash>, MerkleError> {
    inclusion_core(&|i| leaf_hash(&leaves[i]), index, leaves.len())
}

/// [`inclusion_proof`] over leaf hashes.
pub fn inclusion_proof_of_leaf_hashes(
    index: u64,
    hashes: &[Hash],
) -> Result<Vec<Hash>, MerkleError> {
    inclusion_core(&|i| hashes[i], index, hashes.len())
}

fn inclusion_core(
    leaf: &dyn Fn(usize) -> Hash,
    index: u64,
    size: usize,
) -> Result<Vec<Hash>, MerkleError> {
    let out_of_range = MerkleError::IndexOutOfRange {
        index,
        size: size as u64,
    };
    let index = usize::try_from(index).map_err(|_| out_of_range)?;
    if index >= size {
        return Err(out_of_range);
    }
    // Walk down from the root; each step keeps the half holding the leaf
    // and takes the other half's root as the sibling at that level.
    let (mut lo, mut hi) = (0, size);
    let mut path = Vec::with_capacity(64);
    while hi - lo > 1 {
        let mid = lo + split(hi - lo);
        if index < mid {
            path.push(range_root(leaf, mid, hi));
            hi = mid;
        } else {
            path.push(range_root(leaf, lo, mid));
            lo = mid;
        }
    }
    path.reverse();
    Ok(path)
}

/// The consistency proof from the tree of the first `first` leaves to the
/// tree of the first `second` leaves of `leaves` (RFC 6962 PROOF, lowest
/// level first). Needs 0 < first <= second <= leaves.len(); empty when
/// first == second.
pub fn consistency_proof(
    first: u64,
    second: u64,
    leaves: &[[u8; 32]],
) -> Result<Vec<Hash>, MerkleError> {
    consistency_core(&|i| leaf_hash(&leaves[i]), first, second, leaves.len())
}

/// [`consistency_proof`] over leaf hashes.
pub fn consistency_proof_of_leaf_hashes(
    first: u64,
    second: u64,
    hashes: &[Hash],
) -> Result<Vec<Hash>, MerkleError> {
    consistency_core(&|i| hashes[i], first, second, hashes.len())
}

fn consistency_core(
    leaf: &dyn Fn(usize) -> Hash,
    first: u64,
    second: u64,
    have: usize,
) -> Result<Vec<Hash>, MerkleError> {
    if first == 0 || first > second {
        return Err(MerkleError::BadSizes { first, second });
    }
    let n = check_size(second, have)?;
    let mut m = first as usize;
    // SUBPROOF(m, D[lo..hi], whole): `whole` stays true while the old tree
    // is a left part of the current subtree, whose root the verifier knows.
    let (mut lo, mut hi, mut whole) = (0, n, true);
    let mut proof = Vec::with_capacity(64);
    loop {
        if m == hi - lo {
            if !whole {
                proof.push(range_root(leaf, lo, hi));
            }
            break;
        }
        let k = split(hi - lo);
        if m <= k {
            proof.push(range_root(leaf, lo + k, hi));
            hi = lo + k;
        } else {
            proof.push(range_root(leaf, lo, lo + k));
            lo += k;
            m -= k;
            whole = false;
        }
    }
    proof.reverse();
    Ok(proof)
}

/// Checks that the leaf with this data (an event's 32 raw hash bytes) is at
/// `index` in the tree of `size` leaves with this `root`.
pub fn verify_inclusion(
    leaf_data: &[u8],
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), MerkleError> {
    verify_inclusion_hash(&leaf_hash(leaf_data), index, size, proof, root)
}

/// [`verify_inclusion`] for a leaf given by its leaf hash.
pub fn verify_inclusion_hash(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), MerkleError> {
    if root_from_inclusion_proof(leaf_hash, index, size, proof)? == *root {
        Ok(())
    } else {
        Err(MerkleError::RootMismatch)
    }
}

/// The root an inclusion proof leads to (RFC 9162 §2.1.3.2 without the
/// final comparison).
pub fn root_from_inclusion_proof(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
) -> Result<Hash, MerkleError> {
    if index >= size {
        return Err(MerkleError::IndexOutOfRange { index, size });
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf_hash;
    for p in proof {
        if snode == 0 {
            return Err(MerkleError::ProofTooLong);
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            // On the right border a node may have no right sibling: climb
            // until the path turns (fnode odd) or the root is reached.
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(MerkleError::ProofTooShort);
    }
    Ok(r)
}

/// Checks that the tree of `first` leaves with `first_root` is a prefix of
/// the tree of `second` leaves with `second_root` (RFC 9162 §2.1.4.2).
/// Needs 0 < first <= second; equal sizes need an empty proof and equal
/// roots.
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> Result<(), MerkleError> {
    if first == 0 || first > second {
        return Err(MerkleError::BadSizes { first, second });
    }
    if first == second {
        if !proof.is_empty() {
            return Err(MerkleError::ProofTooLong);
        }
        return if first_root == second_root {
            Ok(())
        } else {
            Err(MerkleError::RootMismatch)
        };
    }
    let Some((head, rest)) = proof.split_first() else {
        return Err(MerkleError::ProofTooShort);
    };
    // When the old tree is a perfect subtree its root is not in the proof:
    // start from the given first root, and read every proof hash.
    let (seed, rest) = if first.is_power_of_two() {
        (first_root, proof)
    } else {
        (head, rest)
    };
    let (mut fnode, mut snode) = (first - 1, second - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (*seed, *seed);
    for c in rest {
        if snode == 0 {
            return Err(MerkleError::ProofTooLong);
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err(MerkleError::ProofTooShort);
    }
    if fr != *first_root {
        return Err(MerkleError::FirstRootMismatch);
    }
    if sr != *second_root {
        return Err(MerkleError::RootMismatch);
    }
    Ok(())
}

#[cfg(test)]
#[path = "merkle_tests.rs"]
mod tests;
