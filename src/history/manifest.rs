//! Bucket manifests: a generation's file list (each spec file's path and
//! each rendered file's name, with the object of its text) split into at
//! most [`BUCKETS`] objects of the store. A generation's record names only
//! its manifests, and an unchanged bucket's manifest is the same object from
//! one generation to the next: a generation costs its record (a name per
//! bucket), the manifests of the buckets that changed and the files that
//! changed, however many files there are.
//!
//! An entry's bucket is fixed by its object's hash, not by the file's name:
//! every name an object has, in any generation, is in a manifest of that
//! object's bucket, so whether a generation still names an object is
//! answered by the manifests of one bucket.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::objects::Objects;
use super::HistoryError;

/// How many buckets a file list is split into. Part of the layout, with
/// [`bucket`]: pruning finds every name of an object in the manifests a
/// record files under that object's bucket, so another split needs records
/// that say which one they use.
pub const BUCKETS: u8 = 64;

/// The bucket of an object: its hash's first byte, folded.
pub fn bucket(object: &str) -> u8 {
    object
        .get(..2)
        .and_then(|h| u8::from_str_radix(h, 16).ok())
        .unwrap_or(0)
        % BUCKETS
}

/// A generation's files by the objects of their texts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Listing {
    /// (spec path, object), in the order the specs were read.
    pub specs: Vec<(String, String)>,
    /// Rendered file name -> object.
    pub rendered: BTreeMap<String, String>,
}

/// One bucket's share of a [`Listing`], stored as a (compact JSON) object.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Manifest {
    /// (spec path, object), in the listing's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    specs: Vec<(String, String)>,
    /// The listing position of each of `specs`, present only when the
    /// specs were not read in the order of their paths (a listing in that
    /// order, the usual one, is rebuilt by sorting: adding a spec then
    /// changes one bucket, not every position after it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    order: Vec<usize>,
    /// (rendered file name, object), by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    rendered: Vec<(String, String)>,
}

impl Manifest {
    /// The objects this manifest names (each once per name it has).
    pub fn objects(&self) -> impl Iterator<Item = &str> {
        self.specs
            .iter()
            .chain(&self.rendered)
            .map(|(_, o)| o.as_str())
    }

    pub fn text(&self) -> String {
        serde_json::to_string(self).expect("manifest serializes")
    }

    /// Reads manifest `hash` from `objects`.
    pub fn read(objects: &Objects, hash: &str) -> Result<Manifest, HistoryError> {
        let text = objects.get(hash)?;
        let manifest: Manifest =
            serde_json::from_str(&text).map_err(|_| HistoryError::BadObject {
                path: objects.path_of(hash),
                why: "not a file list",
            })?;
        if !manifest.order.is_empty() && manifest.order.len() != manifest.specs.len() {
            return Err(HistoryError::BadObject {
                path: objects.path_of(hash),
                why: "a file list with a spec order of the wrong length",
            });
        }
        Ok(manifest)
    }
}

impl Listing {
    /// The manifests of the non-empty buckets.
    pub fn split(&self) -> BTreeMap<u8, Manifest> {
        let by_path = self.specs.windows(2).all(|w| w[0].0 < w[1].0);
        let mut out: BTreeMap<u8, Manifest> = BTreeMap::new();
        for (i, spec) in self.specs.iter().enumerate() {
            let m = out.entry(bucket(&spec.1)).or_default();
            m.specs.push(spec.clone());
            if !by_path {
                m.order.push(i);
            }
        }
        for (name, object) in &self.rendered {
            let m = out.entry(bucket(object)).or_default();
            m.rendered.push((name.clone(), object.clone()));
        }
        out
    }

    /// The listing `split` made `manifests` of.
    pub fn join(manifests: impl IntoIterator<Item = Manifest>) -> Listing {
        let mut specs = Vec::new();
        let mut rendered = BTreeMap::new();
        for m in manifests {
            let order = m.order.into_iter().map(Some).chain(std::iter::repeat(None));
            specs.extend(order.zip(m.specs));
            rendered.extend(m.rendered);
        }
        // In listing order: by position when recorded, else by path.
        specs.sort_unstable_by(|(i, a), (j, b)| (i, &a.0).cmp(&(j, &b.0)));
        Listing {
            specs: specs.into_iter().map(|(_, s)| s).collect(),
            rendered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(specs: &[&str], rendered: &[&str]) -> Listing {
        let object = |s: &str| super::super::objects::hash(s);
        Listing {
            specs: specs.iter().map(|p| (p.to_string(), object(p))).collect(),
            rendered: rendered
                .iter()
                .map(|n| (n.to_string(), object(n)))
                .collect(),
        }
    }

    #[test]
    fn split_then_join_gives_the_listing_back_in_its_order() {
        let names: Vec<String> = (0..300).map(|i| format!("/s/{i:03}.toml")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let sorted = listing(&names, &["a.container", "b.volume"]);
        let m = sorted.split();
        assert!(m.len() > 1 && m.len() <= usize::from(BUCKETS));
        assert!(m.values().all(|m| m.order.is_empty()), "by path: no order");
        assert_eq!(Listing::join(m.into_values()), sorted);

        let unsorted = listing(&["/s/b.toml", "/s/a.toml", "/s/a.toml"], &[]);
        let m = unsorted.split();
        assert!(m.values().any(|m| !m.order.is_empty()));
        assert_eq!(Listing::join(m.into_values()), unsorted);
    }

    #[test]
    fn every_name_of_an_object_is_in_its_bucket() {
        let mut l = listing(&[], &[]);
        let object = super::super::objects::hash("same");
        for name in ["x.container", "y.container"] {
            l.rendered.insert(name.into(), object.clone());
        }
        l.specs.push(("/s/z.toml".into(), object.clone()));
        let m = l.split();
        assert_eq!(m.len(), 1);
        assert_eq!(m[&bucket(&object)].objects().count(), 3);
    }
}
