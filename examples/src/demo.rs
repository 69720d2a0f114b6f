//! The demo: a server in-process and a client that uses every kind of RPC.

use rgrpc_runtime::{CallOptions, Channel, Server, Status};

use crate::greeter::Greeter;
use crate::helloworld::{GreeterStub, HelloRequest, register_greeter_server};
use crate::route_guide::RouteGuide;
use crate::routeguide::{Point, Rectangle, RouteGuideStub, RouteNote, register_route_guide_server};

/// Calls GetFeature, ListFeatures, RecordRoute and RouteChat, printing the results.
pub async fn route_guide_tour(channel: Channel) -> Result<(), Status> {
    let client = RouteGuideStub::new(channel);
    let point = Point {
        latitude: 409_000_000,
        longitude: -745_000_000,
    };
    let feature = client.get_feature(point).await?.into_inner();
    println!(
        "unary GetFeature({}, {}) -> {:?}",
        point.latitude, point.longitude, feature.name
    );

    let rect = Rectangle {
        lo: Some(Point {
            latitude: 400_000_000,
            longitude: -750_000_000,
        }),
        hi: Some(Point {
            latitude: 420_000_000,
            longitude: -730_000_000,
        }),
    };
    let mut features = client.list_features(rect).await?;
    let mut names = Vec::new();
    while let Some(f) = features.message().await? {
        names.push(f.name);
    }
    println!(
        "server-streaming ListFeatures -> {} features: {}",
        names.len(),
        names.join(", ")
    );

    let mut route = client.record_route(CallOptions::default()).await?;
    let points: Vec<Point> = crate::route_guide::features()
        .iter()
        .filter_map(|f| f.location)
        .collect();
    for p in &points {
        route.send(p).await?;
    }
    let summary = route.close_and_recv().await?.into_inner();
    println!(
        "client-streaming RecordRoute({} points) -> {} points, {} features, {} m",
        points.len(),
        summary.point_count,
        summary.feature_count,
        summary.distance
    );

    let mut chat = client.route_chat(CallOptions::default()).await?;
    let spot = Some(Point {
        latitude: 1,
        longitude: 1,
    });
    let mut replies = 0;
    for text in ["first", "second", "third"] {
        chat.send(&RouteNote {
            location: spot,
            message: text.to_owned(),
        })
        .await?;
    }
    chat.close_send().await?;
    let mut got = Vec::new();
    while let Some(note) = chat.message().await? {
        replies += 1;
        got.push(note.message);
    }
    println!(
        "bidi RouteChat(3 notes at one spot) -> {replies} earlier notes: {}",
        got.join(", ")
    );
    Ok(())
}

/// Runs the whole demo.
pub async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut server = Server::new();
    register_greeter_server(&mut server, Greeter);
    register_route_guide_server(&mut server, RouteGuide::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve_with_shutdown(listener, async {
        let _ = stopped.await;
    }));
    println!("server listening on {addr}");

    let channel = Channel::connect(&format!("http://{addr}")).await?;
    let greeter = GreeterStub::new(channel.clone());
    let reply = greeter
        .say_hello(HelloRequest {
            name: "rgrpc".into(),
        })
        .await?;
    println!("unary SayHello(\"rgrpc\") -> {:?}", reply.get_ref().message);
    route_guide_tour(channel).await?;

    let _ = stop.send(());
    serving.await??;
    println!("server stopped");
    Ok(())
}
