//! The routeguide service: all four kinds of RPC.

use std::sync::Mutex;
use std::time::Instant;

use rgrpc_runtime::{RecvStream, SendStream, ServerContext, Status};

use crate::routeguide::{Feature, Point, Rectangle, RouteGuideServer, RouteNote, RouteSummary};

/// The route guide, with a small built-in feature database.
#[derive(Debug)]
pub struct RouteGuide {
    features: Vec<Feature>,
    /// Notes received by RouteChat, per location. Bounded: at most `MAX_NOTES` kept.
    notes: Mutex<Vec<RouteNote>>,
}

/// Notes kept for RouteChat; older ones are dropped beyond this so memory stays flat.
const MAX_NOTES: usize = 10_000;

impl Default for RouteGuide {
    fn default() -> RouteGuide {
        RouteGuide {
            features: features(),
            notes: Mutex::new(Vec::new()),
        }
    }
}

/// A few named places, on a grid so rectangle queries have something to find.
pub fn features() -> Vec<Feature> {
    let names = [
        "Berkshire Valley",
        "Patriots Path",
        "Bennett Road",
        "Old Mill",
        "Lake Ridge",
    ];
    names
        .iter()
        .enumerate()
        .map(|(i, name)| Feature {
            name: (*name).to_owned(),
            location: Some(Point {
                latitude: 407_000_000 + i as i32 * 1_000_000,
                longitude: -747_000_000 + i as i32 * 1_000_000,
            }),
        })
        .collect()
}

fn in_range(point: &Point, rect: &Rectangle) -> bool {
    let (lo, hi) = (rect.lo.unwrap_or_default(), rect.hi.unwrap_or_default());
    let (left, right) = (
        lo.longitude.min(hi.longitude),
        lo.longitude.max(hi.longitude),
    );
    let (bottom, top) = (lo.latitude.min(hi.latitude), lo.latitude.max(hi.latitude));
    (left..=right).contains(&point.longitude) && (bottom..=top).contains(&point.latitude)
}

/// Great-circle distance in metres (haversine), as the canonical example computes it.
pub fn distance(a: &Point, b: &Point) -> i32 {
    const COORD_FACTOR: f64 = 1e7;
    const R: f64 = 6_371_000.0;
    let (lat1, lat2) = (
        a.latitude as f64 / COORD_FACTOR,
        b.latitude as f64 / COORD_FACTOR,
    );
    let (lng1, lng2) = (
        a.longitude as f64 / COORD_FACTOR,
        b.longitude as f64 / COORD_FACTOR,
    );
    let (phi1, phi2) = (lat1.to_radians(), lat2.to_radians());
    let dphi = (lat2 - lat1).to_radians();
    let dlambda = (lng2 - lng1).to_radians();
    let h = (dphi / 2.0).sin().powi(2) + phi1.cos() * phi2.cos() * (dlambda / 2.0).sin().powi(2);
    (R * 2.0 * h.sqrt().atan2((1.0 - h).sqrt())) as i32
}

impl RouteGuideServer for RouteGuide {
    async fn get_feature(&self, _ctx: &ServerContext, point: Point) -> Result<Feature, Status> {
        let found = self.features.iter().find(|f| f.location == Some(point));
        Ok(found.cloned().unwrap_or(Feature {
            name: String::new(),
            location: Some(point),
        }))
    }

    async fn list_features(
        &self,
        _ctx: &ServerContext,
        rect: Rectangle,
        mut responses: SendStream<Feature>,
    ) -> Result<(), Status> {
        for feature in &self.features {
            if feature
                .location
                .as_ref()
                .is_some_and(|p| in_range(p, &rect))
            {
                responses.send(feature).await?;
            }
        }
        Ok(())
    }

    async fn record_route(
        &self,
        _ctx: &ServerContext,
        mut points: RecvStream<Point>,
    ) -> Result<RouteSummary, Status> {
        let start = Instant::now();
        let mut summary = RouteSummary::default();
        let mut last: Option<Point> = None;
        while let Some(point) = points.message().await? {
            summary.point_count += 1;
            if self.features.iter().any(|f| f.location == Some(point)) {
                summary.feature_count += 1;
            }
            if let Some(prev) = last {
                summary.distance += distance(&prev, &point);
            }
            last = Some(point);
        }
        summary.elapsed_time = start.elapsed().as_secs() as i32;
        Ok(summary)
    }

    async fn route_chat(
        &self,
        _ctx: &ServerContext,
        mut notes: RecvStream<RouteNote>,
        mut responses: SendStream<RouteNote>,
    ) -> Result<(), Status> {
        while let Some(note) = notes.message().await? {
            let earlier: Vec<RouteNote> = {
                let mut all = self.notes.lock().unwrap_or_else(|e| e.into_inner());
                let earlier = all
                    .iter()
                    .filter(|n| n.location == note.location)
                    .cloned()
                    .collect();
                if all.len() >= MAX_NOTES {
                    all.remove(0);
                }
                all.push(note);
                earlier
            };
            for previous in &earlier {
                responses.send(previous).await?;
            }
        }
        Ok(())
    }
}
