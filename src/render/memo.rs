//! Rendering again only what changed: the daemon renders the whole set on
//! every change, and at 1,000 services that is tens of milliseconds for
//! one edited file.
//!
//! A unit's file is a function of three things and nothing else, and the
//! view functions in `mod.rs` are given exactly these (they never see the
//! [`SpecSet`](crate::spec::SpecSet)):
//! - the unit's own spec (`Container`, `Network`, ...);
//! - [`Shared`]: what a unit's rendering reads of the other units (who is
//!   depended on, which networks and volumes are declared);
//! - the [`RenderOptions`].
//!
//! So a memo entry is reused only when its spec is equal to the one now
//! given, and the whole memo is dropped when `Shared` or the options
//! differ from the last rendering's. A rendering that reads more of the
//! set has to get it through `Shared`, which puts it in the key: the memo
//! cannot serve a file made from inputs it did not compare.

use std::collections::{HashMap, HashSet};

use std::sync::Arc;

use crate::spec::model::{Container, Image, Network, Pod, SpecSet, Volume};

use super::{RenderError, RenderOptions, RenderedFile};

/// What rendering one unit reads of the rest of the set.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct Shared {
    /// Containers another one requires or orders itself after
    /// (health-gated, see `readiness.rs`).
    pub depended: HashSet<String>,
    /// Declared networks: name -> external.
    pub networks: HashMap<String, bool>,
    /// Declared volumes.
    pub volumes: HashSet<String>,
}

impl Shared {
    /// Computed once per rendering (per unit it would be O(n²)).
    pub fn of(set: &SpecSet) -> Shared {
        Shared {
            depended: super::readiness::depended_on(set),
            networks: set
                .networks
                .values()
                .map(|n| (n.name.clone(), n.external))
                .collect(),
            volumes: set.volumes.keys().cloned().collect(),
        }
    }
}

/// The files of the last rendering, by unit kind and name, with the spec
/// each was rendered from.
#[derive(Debug, Default)]
pub struct Memo {
    key: Option<(Shared, RenderOptions)>,
    pub(super) containers: Entries<Arc<Container>>,
    pub(super) networks: Entries<Network>,
    pub(super) volumes: Entries<Volume>,
    pub(super) pods: Entries<Pod>,
    pub(super) images: Entries<Image>,
    /// Units rendered (not reused) by the last rendering.
    rendered_last: usize,
}

impl Memo {
    /// Starts a rendering with `shared` and `opts`: forgets everything if
    /// either differs from the last one's.
    pub(super) fn begin(&mut self, shared: &Shared, opts: &RenderOptions) {
        let same = self
            .key
            .as_ref()
            .is_some_and(|(s, o)| s == shared && o == opts);
        if !same {
            *self = Memo {
                key: Some((shared.clone(), *opts)),
                ..Memo::default()
            };
        }
        self.rendered_last = 0;
    }

    /// Ends a rendering of `set`: forgets units no longer in it.
    pub(super) fn end(&mut self, set: &SpecSet) {
        self.rendered_last = self.containers.end(|n| set.containers.contains_key(n))
            + self.networks.end(|n| set.networks.contains_key(n))
            + self.volumes.end(|n| set.volumes.contains_key(n))
            + self.pods.end(|n| set.pods.contains_key(n))
            + self.images.end(|n| set.images.contains_key(n));
    }

    /// How many units the last rendering rendered rather than reused.
    pub fn rendered_last(&self) -> usize {
        self.rendered_last
    }
}

/// One kind's entries: name -> (spec rendered, file, used by this rendering).
#[derive(Debug)]
pub(super) struct Entries<T> {
    map: HashMap<String, (T, RenderedFile)>,
    fresh: usize,
}

impl<T> Default for Entries<T> {
    fn default() -> Self {
        Entries {
            map: HashMap::new(),
            fresh: 0,
        }
    }
}

impl<T: Clone + PartialEq> Entries<T> {
    /// The file of unit `name` with spec `spec`: the remembered one if it
    /// was rendered from an equal spec, else `render()`'s.
    pub fn get(
        &mut self,
        name: &str,
        spec: &T,
        render: impl FnOnce() -> Result<RenderedFile, RenderError>,
    ) -> Result<RenderedFile, RenderError> {
        if let Some((was, file)) = self.map.get(name) {
            if was == spec {
                return Ok(file.clone());
            }
        }
        let file = render()?;
        self.fresh += 1;
        self.map
            .insert(name.to_string(), (spec.clone(), file.clone()));
        Ok(file)
    }

    /// Forgets the units `keep` says are gone; returns how many were rendered.
    fn end(&mut self, keep: impl Fn(&str) -> bool) -> usize {
        self.map.retain(|n, _| keep(n));
        std::mem::take(&mut self.fresh)
    }
}
