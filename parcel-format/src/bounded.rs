//! Decoding the index within a memory budget (FORMAT.md §8.1).
//!
//! postcard, like every serde format, builds each `Vec` element by element,
//! so the memory a decoded index takes is the number of elements times their
//! size — and a compact encoding lets a few bytes stand for a large element
//! (a 4-byte file-table entry becomes a ~100-byte `Entry`). The caps on
//! counts in [`crate::limits`] are checked after decoding, too late to bound
//! that. So every list in the manifest is decoded through [`vec`], which
//! charges its elements' size to a budget set for the current thread by
//! [`with_budget`] and fails as soon as the budget is spent: the declared
//! length's worth (as far as the budget and the input allow) when the list
//! starts, before its elements and their own lists are decoded, then each
//! element past that as it is decoded. serde has no hook for this; the
//! visitor below is the whole of it.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, Error, SeqAccess, Visitor};

use crate::manifest::ChunkRefs;

thread_local! {
    /// Bytes of list elements the current decode may still allocate.
    static BUDGET: Cell<usize> = const { Cell::new(usize::MAX) };
    /// Bytes of encoded input the current decode reads at most: no list can
    /// have more elements than that, since each takes at least one byte.
    static INPUT: Cell<usize> = const { Cell::new(0) };
    /// Whether the current decode ran out of budget.
    static SPENT: Cell<bool> = const { Cell::new(false) };
}

/// The message of the error a decode fails with when its budget is spent.
pub(crate) const SPENT_MESSAGE: &str = "the index needs more memory than a reader allows";

/// Runs `decode` with `bytes` of budget for list elements on this thread,
/// over at most `input` bytes of encoding. Returns its result and whether the
/// budget ran out.
pub(crate) fn with_budget<T>(bytes: usize, input: usize, decode: impl FnOnce() -> T) -> (T, bool) {
    BUDGET.with(|b| b.set(bytes));
    INPUT.with(|i| i.set(input));
    SPENT.with(|s| s.set(false));
    let result = decode();
    BUDGET.with(|b| b.set(usize::MAX));
    INPUT.with(|i| i.set(0));
    (result, SPENT.with(|s| s.replace(false)))
}

fn charge(bytes: usize) -> bool {
    BUDGET.with(|b| match b.get().checked_sub(bytes) {
        Some(left) => {
            b.set(left);
            true
        }
        None => {
            SPENT.with(|s| s.set(true));
            false
        }
    })
}

/// Deserializes a `Vec<T>`, charging `size_of::<T>()` per element to the
/// thread's budget. Room for the declared length is reserved up front only as
/// far as the budget still allows (and charged for), and never for more
/// elements than the input has bytes, so that a large honest list is
/// allocated once, at its size, rather than grown by doubling, while a small
/// input declaring a huge list reserves little.
pub(crate) fn vec<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    deserializer.deserialize_seq(BoundedSeq::<Vec<T>>(PhantomData))
}

/// A file's chunk references, decoded as [`vec`] decodes a list (each
/// reference charged as if it were on the heap).
pub(crate) fn chunk_refs<'de, D>(deserializer: D) -> Result<ChunkRefs, D::Error>
where
    D: Deserializer<'de>,
{
    deserializer.deserialize_seq(BoundedSeq::<ChunkRefs>(PhantomData))
}

/// The lists the bounded decoding builds.
trait Seq {
    type Item;
    fn with_capacity(n: usize) -> Self;
    fn len(&self) -> usize;
    fn push(&mut self, item: Self::Item);
}

impl<T> Seq for Vec<T> {
    type Item = T;
    fn with_capacity(n: usize) -> Self {
        Vec::with_capacity(n)
    }
    fn len(&self) -> usize {
        Vec::len(self)
    }
    fn push(&mut self, item: T) {
        Vec::push(self, item);
    }
}

impl Seq for ChunkRefs {
    type Item = u32;
    fn with_capacity(n: usize) -> Self {
        ChunkRefs::with_capacity(n)
    }
    fn len(&self) -> usize {
        ChunkRefs::len(self)
    }
    fn push(&mut self, item: u32) {
        ChunkRefs::push(self, item);
    }
}

struct BoundedSeq<S>(PhantomData<S>);

/// Charges the room a list of `declared` elements of `size` bytes reserves
/// when it starts, and returns how many elements that is: as many as
/// declared, but no more than the budget affords or the input could hold
/// (a declared length is not trusted further). Outside `with_budget` (no
/// budget set) nothing is reserved.
fn reserve<E: Error>(declared: Option<usize>, size: usize) -> Result<usize, E> {
    let affordable = match BUDGET.with(Cell::get) {
        usize::MAX => 0,
        left => left / size,
    };
    let reserved = declared
        .unwrap_or(0)
        .min(affordable)
        .min(INPUT.with(Cell::get));
    match charge(reserved * size) {
        true => Ok(reserved),
        false => Err(E::custom(SPENT_MESSAGE)),
    }
}

impl<'de, S> Visitor<'de> for BoundedSeq<S>
where
    S: Seq,
    S::Item: Deserialize<'de>,
{
    type Value = S;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<S, A::Error> {
        let size = std::mem::size_of::<S::Item>().max(1);
        let reserved = reserve(seq.size_hint(), size)?;
        let mut items = S::with_capacity(reserved);
        loop {
            match seq.next_element()? {
                Some(item) => {
                    // Past the reservation, each element is charged before
                    // it is added: a list at most doubles its capacity, so
                    // the budget bounds what is reserved too. (Charged once
                    // decoded, not before: the end of the list costs nothing,
                    // so a list costs exactly its elements, as a writer
                    // counts them with `Manifest::decode_memory`.)
                    if items.len() >= reserved && !charge(size) {
                        return Err(A::Error::custom(SPENT_MESSAGE));
                    }
                    items.push(item);
                }
                None => return Ok(items),
            }
        }
    }
}

/// A list decoded element by element, each dropped once decoded: how a
/// reader that needs what follows a list, not the list, reads past it
/// (FORMAT.md §7.4: the media check reads past the tables to a delta's
/// base version). It holds one element at a time, whatever the list's
/// length, but charges each element to the budget as [`vec`] does (and
/// lists inside an element as they are charged there), so that an index
/// is refused for its memory whether it is decoded or read past. Written
/// here because serde's own `IgnoredAny` needs a format that describes
/// itself, which postcard is not: only the element type says how many
/// bytes an element takes.
pub(crate) struct Skipped<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Skipped<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(SkippedSeq::<T>(PhantomData))
    }
}

struct SkippedSeq<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for SkippedSeq<T> {
    type Value = Skipped<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skipped<T>, A::Error> {
        let size = std::mem::size_of::<T>().max(1);
        // Charged exactly as `BoundedSeq` charges the list it builds (the
        // reservation up front, then each element past it), though nothing
        // is allocated: then the budget runs out at the same element, and
        // the index is refused for the same reason, whichever way it is read.
        let reserved = reserve(seq.size_hint(), size)?;
        let mut read = 0usize;
        while seq.next_element::<T>()?.is_some() {
            if read >= reserved && !charge(size) {
                return Err(A::Error::custom(SPENT_MESSAGE));
            }
            read = read.saturating_add(1);
        }
        Ok(Skipped(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A list decoded and kept, as the manifest's lists are.
    #[derive(serde::Deserialize)]
    struct Kept(#[serde(deserialize_with = "vec")] Vec<u64>);

    #[test]
    fn a_list_read_past_is_charged_as_a_decoded_one() {
        let list: Vec<u64> = (0..1_000).collect();
        let bytes = postcard::to_allocvec(&list).expect("encodes");
        let need = 1_000 * std::mem::size_of::<u64>();
        for budget in [need - 1, need] {
            let decode = |skip: bool| {
                with_budget(budget, bytes.len(), || match skip {
                    true => postcard::from_bytes::<Skipped<u64>>(&bytes).map(drop),
                    false => {
                        postcard::from_bytes::<Kept>(&bytes).map(|kept| assert_eq!(kept.0, list))
                    }
                })
            };
            let ((kept, kept_spent), (skipped, skipped_spent)) = (decode(false), decode(true));
            assert_eq!(kept_spent, budget < need, "budget {budget}");
            assert_eq!(skipped_spent, kept_spent, "budget {budget}");
            assert_eq!(skipped.is_ok(), kept.is_ok(), "budget {budget}");
        }
    }

    /// An element holding a list of its own, as a file-table entry holds
    /// its chunk references.
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Inner(#[serde(deserialize_with = "vec")] Vec<u64>);

    #[derive(serde::Deserialize)]
    struct KeptInner(#[serde(deserialize_with = "vec")] Vec<Inner>);

    #[test]
    fn a_cut_list_read_past_runs_out_of_budget_where_a_decoded_one_does() {
        // 100 elements of 10 numbers each, cut after 60 elements: decoded,
        // the list reserves its declared 100 elements (24 bytes each) up
        // front, so the budget runs out in the nested lists before the cut
        // is reached; read past, it must run out there too, not report the
        // cut, so that the index is refused as too large either way.
        let list: Vec<Inner> = (0..100).map(|_| Inner((0..10).collect())).collect();
        let whole = postcard::to_allocvec(&list).expect("encodes");
        let cut = &whole[..1 + 60 * 11];
        let size = std::mem::size_of::<Inner>();
        assert!(100 * size + 60 * 80 > 6_500 && 60 * (size + 80) <= 6_500);
        let decode = |skip: bool| {
            with_budget(6_500, cut.len(), || match skip {
                true => postcard::from_bytes::<Skipped<Inner>>(cut).map(drop),
                false => postcard::from_bytes::<KeptInner>(cut).map(|kept| drop(kept.0)),
            })
        };
        let ((kept, kept_spent), (skipped, skipped_spent)) = (decode(false), decode(true));
        assert!(kept.is_err() && kept_spent, "decoded: {kept:?}");
        assert!(skipped.is_err() && skipped_spent, "read past: {skipped:?}");
    }
}
