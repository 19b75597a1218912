//! The room registry shared by all workers: room name → members. Sharded
//! (DashMap) so joins in different rooms do not contend; a broadcast holds
//! its room's shard for reading while it queues to each member.

use std::collections::HashMap;
use std::sync::Arc;

use dashmap::DashMap;

use crate::conn::Conn;

pub struct Rooms {
    map: DashMap<Arc<str>, HashMap<u64, Arc<Conn>>>,
}

impl Rooms {
    pub fn new(shards: usize) -> Rooms {
        Rooms {
            map: DashMap::with_shard_amount(shards),
        }
    }

    /// Adds `conn` to `room`, creating it. Returns the shared room name and
    /// whether the room was created.
    pub fn join(&self, room: &str, conn: &Arc<Conn>) -> (Arc<str>, bool) {
        if let Some(mut members) = self.map.get_mut(room) {
            members.insert(conn.id, conn.clone());
            return (members.key().clone(), false);
        }
        let name: Arc<str> = Arc::from(room);
        let mut created = false;
        self.map
            .entry(name.clone())
            .or_insert_with(|| {
                created = true;
                HashMap::new()
            })
            .insert(conn.id, conn.clone());
        (name, created)
    }

    /// Removes `id` from `room`, dropping the room when it empties. Returns
    /// whether the room was removed.
    pub fn leave(&self, room: &str, id: u64) -> bool {
        if let Some(mut members) = self.map.get_mut(room) {
            members.remove(&id);
        }
        self.map
            .remove_if(room, |_, members| members.is_empty())
            .is_some()
    }

    /// Calls `f` for each member of `room`; returns how many there were.
    pub fn for_each_member(&self, room: &str, mut f: impl FnMut(&Arc<Conn>)) -> usize {
        match self.map.get(room) {
            Some(members) => {
                members.values().for_each(&mut f);
                members.len()
            }
            None => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::Proto;

    #[test]
    fn rooms_appear_and_vanish_with_members() {
        let rooms = Rooms::new(4);
        let a = Arc::new(Conn::new(1, Proto::Json, 0));
        let b = Arc::new(Conn::new(2, Proto::Json, 0));
        assert!(rooms.join("x", &a).1);
        assert!(!rooms.join("x", &b).1);
        assert_eq!(rooms.for_each_member("x", |_| {}), 2);
        assert_eq!(rooms.for_each_member("y", |_| {}), 0);
        assert!(!rooms.leave("x", 1));
        assert!(rooms.leave("x", 2));
        assert!(rooms.map.is_empty());
        assert!(!rooms.leave("x", 2));
    }
}
