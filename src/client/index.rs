//! A reflector store's objects by key: the releases of a train, the pods
//! of a train, the workloads a train claims, the trains targeting a
//! workload. Kept from the same watch events as the store, so that a
//! reconcile looks up its own objects instead of scanning everyone's: a
//! scan per reconcile costs the square of the fleet in a wave.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::{Arc, RwLock};

use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

/// The keys an object is found by (none: it is not indexed).
pub type Keys<K> = fn(&K) -> Vec<String>;

pub struct Index<K: Resource>
where
    K::DynamicType: Eq + Hash + Clone,
{
    keys: Keys<K>,
    inner: Arc<RwLock<Inner<K>>>,
}

impl<K: Resource> Clone for Index<K>
where
    K::DynamicType: Eq + Hash + Clone,
{
    fn clone(&self) -> Self {
        Index {
            keys: self.keys,
            inner: self.inner.clone(),
        }
    }
}

struct Inner<K: Resource>
where
    K::DynamicType: Eq + Hash + Clone,
{
    by_key: HashMap<String, HashSet<ObjectRef<K>>>,
    keys_of: HashMap<ObjectRef<K>, Vec<String>>,
    /// The keys of a relist under way; they replace the index when it
    /// ends, as the store's contents are replaced.
    relist: Option<HashMap<ObjectRef<K>, Vec<String>>>,
}

impl<K> Index<K>
where
    K: Resource + Clone,
    K::DynamicType: Eq + Hash + Clone + Default,
{
    pub fn new(keys: Keys<K>) -> Self {
        Index {
            keys,
            inner: Arc::new(RwLock::new(Inner {
                by_key: HashMap::new(),
                keys_of: HashMap::new(),
                relist: None,
            })),
        }
    }

    /// Follows one watch event (after the store has).
    pub fn apply(&self, event: &watcher::Event<K>) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        match event {
            watcher::Event::Apply(obj) => inner.set(reference(obj), (self.keys)(obj)),
            watcher::Event::Delete(obj) => inner.set(reference(obj), Vec::new()),
            watcher::Event::Init => inner.relist = Some(HashMap::new()),
            watcher::Event::InitApply(obj) => {
                let keys = (self.keys)(obj);
                if let Some(relist) = &mut inner.relist
                    && !keys.is_empty()
                {
                    relist.insert(reference(obj), keys);
                }
            }
            watcher::Event::InitDone => {
                if let Some(relist) = inner.relist.take() {
                    inner.replace(relist);
                }
            }
        }
    }

    /// A closure following a watch stream's items, for `inspect`.
    pub fn follower(&self) -> impl FnMut(&Result<watcher::Event<K>, watcher::Error>) + use<K> {
        let index = self.clone();
        move |item| {
            if let Ok(event) = item {
                index.apply(event);
            }
        }
    }

    /// The objects of `store` found by `key`, as the store has them now
    /// (checked again, so a store a step ahead of the index is not
    /// misread).
    pub fn find(&self, store: &Store<K>, key: &str) -> Vec<Arc<K>> {
        let refs: Vec<ObjectRef<K>> = {
            let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
            match inner.by_key.get(key) {
                Some(refs) => refs.iter().cloned().collect(),
                None => return Vec::new(),
            }
        };
        refs.iter()
            .filter_map(|r| store.get(r))
            .filter(|obj| (self.keys)(obj).iter().any(|k| k == key))
            .collect()
    }
}

impl<K: Resource> Inner<K>
where
    K::DynamicType: Eq + Hash + Clone,
{
    fn set(&mut self, obj: ObjectRef<K>, keys: Vec<String>) {
        self.unlink(&obj);
        if keys.is_empty() {
            return;
        }
        for key in &keys {
            self.by_key
                .entry(key.clone())
                .or_default()
                .insert(obj.clone());
        }
        self.keys_of.insert(obj, keys);
    }

    fn unlink(&mut self, obj: &ObjectRef<K>) {
        for key in self.keys_of.remove(obj).unwrap_or_default() {
            if let Some(refs) = self.by_key.get_mut(&key) {
                refs.remove(obj);
                if refs.is_empty() {
                    self.by_key.remove(&key);
                }
            }
        }
    }

    fn replace(&mut self, keys_of: HashMap<ObjectRef<K>, Vec<String>>) {
        self.by_key.clear();
        for (obj, keys) in &keys_of {
            for key in keys {
                self.by_key
                    .entry(key.clone())
                    .or_default()
                    .insert(obj.clone());
            }
        }
        self.keys_of = keys_of;
    }
}

/// Name and namespace only: the store looks objects up by these.
fn reference<K>(obj: &K) -> ObjectRef<K>
where
    K: Resource,
    K::DynamicType: Default,
{
    let meta = obj.meta();
    let r = ObjectRef::new(meta.name.as_deref().unwrap_or_default());
    match &meta.namespace {
        Some(ns) => r.within(ns),
        None => r,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::reflector;

    use super::*;

    fn map(name: &str, train: Option<&str>) -> ConfigMap {
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some(name.into());
        cm.metadata.namespace = Some("ns".into());
        cm.metadata.labels =
            train.map(|t| [("train".to_string(), t.to_string())].into_iter().collect());
        cm
    }

    fn train_of(cm: &ConfigMap) -> Vec<String> {
        cm.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("train"))
            .into_iter()
            .cloned()
            .collect()
    }

    /// Feeds `events` to a store and the index, as a watch stream does.
    fn follow(events: Vec<watcher::Event<ConfigMap>>) -> (Store<ConfigMap>, Index<ConfigMap>) {
        let (store, mut writer) = reflector::store();
        let index = Index::new(train_of);
        for event in events {
            writer.apply_watcher_event(&event);
            index.apply(&event);
        }
        (store, index)
    }

    fn names(found: Vec<Arc<ConfigMap>>) -> Vec<String> {
        let mut names: Vec<String> = found
            .iter()
            .map(|c| c.metadata.name.clone().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn objects_are_found_by_their_current_key() {
        use watcher::Event::*;
        let (store, index) = follow(vec![
            Init,
            InitApply(map("a", Some("one"))),
            InitApply(map("b", Some("two"))),
            InitApply(map("c", None)),
            InitDone,
            Apply(map("d", Some("one"))),
            // Moved from one train to the other.
            Apply(map("b", Some("one"))),
            Delete(map("a", Some("one"))),
        ]);
        assert_eq!(names(index.find(&store, "one")), ["b", "d"]);
        assert!(index.find(&store, "two").is_empty());
    }

    #[test]
    fn a_relist_replaces_the_index_when_it_ends() {
        use watcher::Event::*;
        let relist = |finished: bool| {
            let mut events = vec![
                Init,
                InitApply(map("a", Some("one"))),
                InitDone,
                Init,
                InitApply(map("b", Some("one"))),
            ];
            if finished {
                events.push(InitDone);
            }
            follow(events)
        };
        // Until the relist ends, the store and the index answer as before.
        let (store, index) = relist(false);
        assert_eq!(names(index.find(&store, "one")), ["a"]);
        let (store, index) = relist(true);
        assert_eq!(names(index.find(&store, "one")), ["b"]);
    }

    #[test]
    fn an_object_under_several_keys_is_found_by_each() {
        fn both(cm: &ConfigMap) -> Vec<String> {
            vec![
                format!("x/{}", cm.metadata.name.as_deref().unwrap_or_default()),
                "all".into(),
            ]
        }
        let (store, mut writer) = reflector::store();
        let index = Index::new(both);
        for e in [
            watcher::Event::Apply(map("a", None)),
            watcher::Event::Apply(map("b", None)),
        ] {
            writer.apply_watcher_event(&e);
            index.apply(&e);
        }
        assert_eq!(names(index.find(&store, "all")), ["a", "b"]);
        assert_eq!(names(index.find(&store, "x/b")), ["b"]);
    }
}
