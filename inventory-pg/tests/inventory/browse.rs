use proto::v1::*;

use crate::common::*;

fn event_request(event_id: &str, name: &str, description: &str, day: i64) -> CreateEventRequest {
    CreateEventRequest {
        event_id: event_id.into(),
        name: name.into(),
        starts_at: Some(prost_types::Timestamp {
            seconds: 1_900_000_000 + day * 86_400,
            nanos: 0,
        }),
        description: description.into(),
        currency: "GBP".into(),
        venue: Some(VenueLayout {
            venue_name: "Roundhouse".into(),
            price_tiers: vec![
                PriceTier {
                    name: "floor".into(),
                    price_cents: 9_000,
                },
                PriceTier {
                    name: "balcony".into(),
                    price_cents: 4_500,
                },
            ],
            sections: vec![
                SectionLayout {
                    name: "F".into(),
                    rows: 2,
                    seats_per_row: 5,
                    price_tier: "floor".into(),
                },
                SectionLayout {
                    name: "B".into(),
                    rows: 3,
                    seats_per_row: 4,
                    price_tier: "balcony".into(),
                },
            ],
        }),
    }
}

#[tokio::test]
async fn search_finds_events_by_a_word_of_their_description_ranked() {
    let inventory = Inventory::start().await;
    let mut client = inventory.client.clone();
    for request in [
        event_request("jazz", "Jazz Night", "smooth saxophone until late", 1),
        event_request("rock", "Rock Arena", "loud guitars and a jazz encore", 2),
        event_request("folk", "Folk Evening", "acoustic songs", 3),
    ] {
        client.create_event(request).await.expect("created");
    }

    let found = client
        .search_events(SearchEventsRequest {
            query: "saxophone".into(),
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .expect("searched")
        .into_inner();
    let ids: Vec<_> = found
        .results
        .iter()
        .map(|r| r.event.as_ref().map(|e| e.event_id.as_str()))
        .collect();
    assert_eq!(ids, [Some("jazz")]);

    let found = client
        .search_events(SearchEventsRequest {
            query: "jazz".into(),
            page_size: 0,
            page_token: String::new(),
        })
        .await
        .expect("searched")
        .into_inner();
    let ids: Vec<_> = found
        .results
        .iter()
        .map(|r| r.event.as_ref().map(|e| e.event_id.as_str()))
        .collect();
    assert_eq!(
        ids,
        [Some("jazz"), Some("rock")],
        "a name match outranks a description match"
    );
    assert!(found.results[0].rank > found.results[1].rank);
}

#[tokio::test]
async fn paging_is_stable_for_lists_and_searches() {
    let inventory = Inventory::start().await;
    let mut client = inventory.client.clone();
    for i in 0..7 {
        client
            .create_event(event_request(
                &format!("fest-{i}"),
                &format!("Festival day {i}"),
                "summer festival",
                // Two events share each start time, so the id breaks the tie.
                i / 2,
            ))
            .await
            .expect("created");
    }

    let all = client
        .list_events(ListEventsRequest {
            page_size: 100,
            page_token: String::new(),
        })
        .await
        .expect("listed")
        .into_inner();
    assert_eq!(all.events.len(), 7);
    assert!(all.next_page_token.is_empty());
    let mut paged = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = client
            .list_events(ListEventsRequest {
                page_size: 3,
                page_token: token.clone(),
            })
            .await
            .expect("listed")
            .into_inner();
        pages += 1;
        paged.extend(page.events);
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(
        paged, all.events,
        "pages of 3 add up to the whole list, in order"
    );

    let whole = client
        .search_events(SearchEventsRequest {
            query: "festival".into(),
            page_size: 100,
            page_token: String::new(),
        })
        .await
        .expect("searched")
        .into_inner()
        .results;
    assert_eq!(whole.len(), 7);
    let mut paged = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .search_events(SearchEventsRequest {
                query: "festival".into(),
                page_size: 2,
                page_token: token.clone(),
            })
            .await
            .expect("searched")
            .into_inner();
        paged.extend(page.results);
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(paged, whole);
}

#[tokio::test]
async fn get_event_draws_the_seat_map_with_availability_per_section_and_tier() {
    let inventory = Inventory::start().await;
    let mut client = inventory.client.clone();
    let created = client
        .create_event(event_request("map", "Map Show", "", 1))
        .await
        .expect("created")
        .into_inner()
        .event
        .expect("event");
    assert_eq!(created.capacity, 22);
    assert_eq!(created.currency, "GBP");
    client
        .hold_seats(hold("saga-map", "map", &["F-1-1", "B-3-4"], 600))
        .await
        .expect("held");

    let event = client
        .get_event(GetEventRequest {
            event_id: "map".into(),
            include_seats: true,
            consistent_read: false,
        })
        .await
        .expect("read")
        .into_inner();
    assert_eq!(event.seats.len(), 22);
    assert_eq!(event.seats[0].seat_id, "B-1-1");
    let summary: Vec<_> = event
        .availability
        .iter()
        .map(|a| {
            (
                a.section.as_str(),
                a.price_tier.as_str(),
                a.price_cents,
                a.available,
                a.held,
                a.sold,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("B", "balcony", 4_500, 11, 1, 0),
            ("F", "floor", 9_000, 9, 1, 0)
        ]
    );
    let total = event.total.expect("total");
    assert_eq!((total.available, total.held, total.sold), (20, 2, 0));
}

/// GetEvent answers from a cache. Concurrent reads share one read of the database;
/// every write through inventory makes the next map read it again, so a map asked for
/// after a hold was answered shows the hold; a consistent read always reads the
/// database; and a change inventory did not make (here SQL, in production another
/// inventory process) shows once the map's max age has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seat_map_is_cached_until_a_write_and_never_served_past_its_max_age() {
    let inventory = Inventory::start_with(&["--seat-map-max-age-ms", "5000"]).await;
    inventory.event("cached", 1, 4, 1_000).await;
    let read = |consistent_read| GetEventRequest {
        event_id: "cached".into(),
        include_seats: true,
        consistent_read,
    };
    let get = |request: GetEventRequest| {
        let mut client = inventory.client.clone();
        async move {
            client
                .get_event(request)
                .await
                .expect("the map")
                .into_inner()
        }
    };
    let total = |map: &GetEventResponse| {
        let t = map.total.clone().expect("a total");
        (t.available, t.held, t.sold)
    };

    let first = get(read(false)).await;
    assert!(!first.cached, "nothing cached yet");
    assert!(first.as_of.is_some());
    assert!(
        get(read(false)).await.cached,
        "the second read is the first's map"
    );

    inventory
        .client
        .clone()
        .hold_seats(hold("saga-cached", "cached", &["A-1-1"], 600))
        .await
        .expect("held");
    // Twenty readers at once after the write: one reads the database, all see the hold.
    let maps = futures::future::join_all((0..20).map(|_| get(read(false)))).await;
    assert_eq!(
        maps.iter().filter(|m| !m.cached).count(),
        1,
        "one read for all"
    );
    assert!(maps.iter().all(|m| total(m) == (3, 1, 0)));

    // Behind inventory's back: the cache cannot know; a consistent read does.
    inventory
        .sql()
        .await
        .execute(
            "UPDATE seats SET status = 'SOLD', order_id = 'by-hand'
              WHERE event_id = 'cached' AND seat_id = 'A-1-2'",
            &[],
        )
        .await
        .expect("sold by hand");
    let consistent = get(read(true)).await;
    assert!(!consistent.cached);
    assert_eq!(total(&consistent), (2, 1, 1));
    local_mesh::eventually(
        "the change made elsewhere shows once the max age passed",
        std::time::Duration::from_secs(30),
        || async { total(&get(read(false)).await) == (2, 1, 1) },
    )
    .await;
}

/// Anyone may read the seat map, from the cache; reading past it is for the mesh's
/// services and operators. A fan or an anonymous caller asking for a consistent read is
/// refused, naming the field, and changes nothing.
#[tokio::test]
async fn only_services_and_operators_may_read_past_the_cache() {
    use proto::v1::inventory_service_client::InventoryServiceClient;
    use server_kit::outgoing::Outgoing;

    let inventory = Inventory::start().await;
    inventory.event("guarded", 1, 2, 1_000).await;
    let endpoint = inventory.process.endpoint();
    let read = |consistent_read| GetEventRequest {
        event_id: "guarded".into(),
        include_seats: false,
        consistent_read,
    };
    let before = inventory.snapshot().await;
    for (who, credential) in [
        ("anonymous", Outgoing::anonymous()),
        ("a fan", local_mesh::auth::fan("fan-1")),
    ] {
        let mut client =
            InventoryServiceClient::new(local_mesh::auth::channel_as(&endpoint, credential).await);
        client
            .get_event(read(false))
            .await
            .unwrap_or_else(|status| panic!("{who} reads the cached map: {status:?}"));
        let status = client
            .get_event(read(true))
            .await
            .expect_err("a consistent read needs a service's or an operator's token");
        let (code, reason, metadata) = local_mesh::details(&status);
        assert_eq!(
            (code, reason.as_str()),
            (tonic::Code::PermissionDenied, "SCOPE_REQUIRED"),
            "{who}: {status:?}"
        );
        assert_eq!(
            metadata.get("field").map(String::as_str),
            Some("consistent_read")
        );
    }
    for (who, credential) in [
        ("an operator", local_mesh::auth::operator()),
        (
            "a service",
            Outgoing::bearer(&local_mesh::auth::service_token()).expect("a token"),
        ),
    ] {
        let mut client =
            InventoryServiceClient::new(local_mesh::auth::channel_as(&endpoint, credential).await);
        let map = client
            .get_event(read(true))
            .await
            .unwrap_or_else(|status| panic!("{who} reads the database: {status:?}"))
            .into_inner();
        assert!(!map.cached, "{who}");
    }
    assert_eq!(inventory.snapshot().await, before, "reads change nothing");
}
