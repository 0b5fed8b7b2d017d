//! `handoff.toml` parsed strictly: defaults, refusals naming the key, paths resolved against the file.

use super::*;

/// Why the configuration `text` is refused.
fn refused(text: &str) -> String {
    Config::parse(text, Path::new("h.toml"))
        .unwrap_err()
        .to_string()
}

#[test]
fn durability_defaults_to_power_and_takes_process() {
    let parse = |text: &str| Config::parse(text, Path::new("h.toml"));
    assert_eq!(
        parse("").unwrap().durability,
        crate::store::Durability::Power
    );
    assert_eq!(
        parse("[store]\ndurability = \"process\"\n")
            .unwrap()
            .durability,
        crate::store::Durability::Process
    );
    let err = parse("[store]\ndurability = \"eventually\"\n").unwrap_err();
    assert!(err.to_string().contains("durability"), "{err}");
}

#[test]
fn a_lease_holds_twice_the_longest_call_and_at_most_a_day() {
    let lease = |text: &str| {
        Config::parse(text, Path::new("h.toml"))
            .map(|c| c.lease.as_secs())
            .map_err(|e| e.to_string())
    };
    assert_eq!(lease(""), Ok(DEFAULT_LEASE_SECONDS));
    assert_eq!(lease("[store]\nlease-seconds = 120\n"), Ok(120));
    let short = lease("[store]\nlease-seconds = 119\n").unwrap_err();
    assert!(
        short
            .contains("lease-seconds is 119: between 120 (twice the ceiling's max-call-timeout-ms"),
        "{short}"
    );
    let long = lease("[store]\nlease-seconds = 86401\n").unwrap_err();
    assert!(long.contains("and 86400"), "{long}");
    // The floor follows the ceiling's longest call, and so does the default.
    let quick = "[ceiling]\nmax-call-timeout-ms = 5000\n";
    assert_eq!(
        lease(&format!("{quick}[store]\nlease-seconds = 10\n")),
        Ok(10)
    );
    assert!(lease(&format!("{quick}[store]\nlease-seconds = 9\n")).is_err());
    assert_eq!(lease("[ceiling]\nmax-call-timeout-ms = 200000\n"), Ok(400));
}

#[test]
fn runs_in_flight_are_bounded_and_workers_is_their_older_name() {
    let parse = |text: &str| Config::parse(text, Path::new("h.toml"));
    let serve = parse("").unwrap().serve;
    assert_eq!((serve.max_in_flight, serve.threads), (256, 0));
    assert!(serve.run_threads() >= 3, "0 means three per core");
    assert_eq!(
        parse("[serve]\nworkers = 3\n").unwrap().serve.max_in_flight,
        3
    );
    let both = parse("[serve]\nworkers = 3\nmax-in-flight = 5\nthreads = 2\n")
        .unwrap_err()
        .to_string();
    assert!(
        both.contains("keep max-in-flight alone"),
        "one setting under two names is refused: {both}"
    );
    for (bad, says) in [
        ("max-in-flight = 0", "at least 1"),
        ("max-in-flight = 100000", "at most 4096"),
        ("workers = 0", "at least 1"),
        ("threads = 1025", "at most 1024"),
        ("max-body-bytes = 16777217", "at most 16777216"),
    ] {
        let err = parse(&format!("[serve]\n{bad}\n")).unwrap_err().to_string();
        assert!(err.contains("serve.") && err.contains(says), "{bad}: {err}");
    }
    let serve = parse("[serve]\nthreads = 1024\nmax-body-bytes = 16777216\n")
        .unwrap()
        .serve;
    assert_eq!((serve.threads, serve.max_body_bytes), (1024, 16 << 20));
}

#[test]
fn a_setting_a_variable_gave_is_refused_naming_the_variable() {
    let with = |var: &'static str, value: &'static str| {
        Config::parse_with_env(
            "[serve]\nmax-queued = 5\n",
            Path::new("h.toml"),
            &move |v| (v == var).then(|| value.to_string()),
        )
        .unwrap_err()
        .to_string()
    };
    for (var, value, says) in [
        (
            "HANDOFF_SERVE_MAX_IN_FLIGHT",
            "0",
            "serve.max-in-flight must be at least 1",
        ),
        (
            "HANDOFF_SERVE_MAX_BODY_BYTES",
            "99999999999",
            "serve.max-body-bytes is 99999999999",
        ),
        (
            "HANDOFF_STORE_DURABILITY",
            "bogus",
            "unknown variant `bogus`",
        ),
        ("HANDOFF_SERVE_LISTEN", "nonsense", "invalid socket address"),
        (
            "HANDOFF_SERVE_HEADER_READ_TIMEOUT_SECONDS",
            "99999999999",
            "serve.header-read-timeout-seconds is 99999999999; use 1 to 3600",
        ),
        (
            "HANDOFF_SERVE_DELIVER_SECONDS",
            "9223372036854775807",
            "serve.deliver-seconds is 9223372036854775807; use 0 to 86400",
        ),
        (
            "HANDOFF_SERVE_MAX_QUEUED",
            "9223372036854775807",
            "serve.max-queued is 9223372036854775807; at most 1000000",
        ),
        (
            "HANDOFF_SERVE_MAX_CONNECTIONS",
            "65537",
            "serve.max-connections is 65537; at most 65536",
        ),
    ] {
        let err = with(var, value);
        assert!(
            err.contains(says) && err.contains(&format!("(set by {var};")),
            "{var}={value}: {err}"
        );
        assert!(!err.contains('\n'), "one line: {err}");
    }
    // A number past any setting's type, and a word, each said as it is.
    for (value, says) in [
        (
            "18446744073709551616",
            "far too large for serve.shutdown-grace-seconds",
        ),
        (
            "thirty",
            "not a whole number for serve.shutdown-grace-seconds",
        ),
    ] {
        let err = Config::parse_with_env("", Path::new("h.toml"), &move |v| {
            (v == "HANDOFF_SERVE_SHUTDOWN_GRACE_SECONDS").then(|| value.to_string())
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains(says), "{value}: {err}");
    }
    // A problem with the file's own setting names no variable.
    let err = Config::parse_with_env("[serve]\nmax-queued = 0\n", Path::new("h.toml"), &|_| None)
        .unwrap_err()
        .to_string();
    assert!(!err.contains("set by"), "{err}");
}

#[test]
fn an_instance_name_is_a_plain_word() {
    // TOML keys, quoted: a quote, a leading dash, a line break, a space.
    for bad in [r#""a\"b""#, r#""-lead""#, r#""new\nline""#, r#""sp ace""#] {
        let text = format!("[adapters.{bad}]\npackage = \"p\"\n");
        let err = Config::parse(&text, Path::new("h.toml")).unwrap_err();
        assert!(err.to_string().contains("instance name"), "{bad}: {err}");
    }
    assert!(valid_instance_name("tracker-2.eu_west"));
    // Long names: the refusal says how long a name may be, and repeats only
    // the start of the one given.
    let long = "n".repeat(1000);
    for text in [
        format!("[adapters.{long}]\npackage = \"p\"\n"),
        format!("[roles.{long}]\nreach = []\n"),
    ] {
        let err = Config::parse(&text, Path::new("h.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("at most 64"), "{err}");
        assert!(err.len() < 400, "{err}");
    }
    assert!(valid_instance_name(&"n".repeat(64)));
}

#[test]
fn unknown_keys_are_refused() {
    let err =
        Config::parse("[ceiling]\nallow-everything = true\n", Path::new("h.toml")).unwrap_err();
    assert!(err.to_string().contains("allow-everything"), "{err}");
}

#[test]
fn a_table_given_by_position_is_refused_in_the_file_and_from_a_variable() {
    // Read field by field, `[5, 10, 1000]` would be attempts, base delay
    // and maximum delay, and `handoff check` would show them as defaults.
    let err = refused("retry = [5, 10, 1000]\n");
    assert!(err.contains("given by position"), "{err}");
    assert!(err.contains("line 1"), "{err}");
    let err = refused("[serve]\nlisten = \"127.0.0.1:0\"\nsources.\"a/b\" = [\"none\"]\n");
    assert!(err.contains("given by position"), "{err}");
    // A variable over the file reads the whole file again, still by name.
    let vars = |name: &str| (name == "HANDOFF_STORE_DURABILITY").then(|| "process".to_string());
    let err = Config::parse_with_env("retry = [5, 10, 1000]\n", Path::new("h.toml"), &vars)
        .unwrap_err()
        .to_string();
    assert!(err.contains("given by position"), "{err}");
}

#[test]
fn an_adapter_concurrency_is_a_positive_count() {
    let parse = |n: &str| {
        Config::parse(
            &format!("[adapters.tracker]\npackage = \"p\"\nconcurrency = {n}\n"),
            Path::new("h.toml"),
        )
    };
    assert_eq!(parse("2").unwrap().adapters["tracker"].concurrency, Some(2));
    let err = parse("0").unwrap_err().to_string();
    assert!(err.contains("adapters.tracker.concurrency is 0"), "{err}");
    assert!(parse("-1").is_err());
    assert!(parse("\"many\"").is_err());
    assert_eq!(
        parse("4096").unwrap().adapters["tracker"].concurrency,
        Some(4096)
    );
    let err = parse("9223372036854775807").unwrap_err().to_string();
    assert!(
        err.contains("adapters.tracker.concurrency is 9223372036854775807; at most 4096"),
        "{err}"
    );
    let unset = Config::parse("[adapters.t]\npackage = \"p\"\n", Path::new("h.toml")).unwrap();
    assert_eq!(unset.adapters["t"].concurrency, None);
    assert!(!unset.adapters["t"].one_call_per_record);
}

#[test]
fn one_call_per_record_is_a_yes_or_no() {
    let parse = |v: &str| {
        Config::parse(
            &format!("[adapters.records]\npackage = \"p\"\none-call-per-record = {v}\n"),
            Path::new("h.toml"),
        )
    };
    assert!(parse("true").unwrap().adapters["records"].one_call_per_record);
    assert!(!parse("false").unwrap().adapters["records"].one_call_per_record);
    let err = parse("\"yes\"").unwrap_err().to_string();
    assert!(err.contains("one-call-per-record"), "{err}");
}

#[test]
fn an_instance_key_no_surface_reads_is_refused_with_the_keys_there_are() {
    let err = Config::parse(
        "[adapters.t]\npackage = \"p\"\nhttp-method = [\"GET\"]\n",
        Path::new("h.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("adapters.t: unknown key `http-method`"),
        "{err}"
    );
    assert!(
        err.contains("http-methods") && err.contains("smtp-ca-file"),
        "{err}"
    );
    let err = Config::parse(
        "[adapters.t]\npackage = \"p\"\nread-only = \"records\"\n",
        Path::new("h.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("adapters.t: ") && err.contains("expected an array"),
        "{err}"
    );
}

#[test]
fn instance_paths_resolve_against_the_config_directory() {
    let text = r#"
[adapters.archive]
package = "pkgs/archive"
directories = { evidence = "evidence" }
http-ca-file = "ca.pem"
secrets = { token = { file = "secrets/token" } }
"#;
    let cfg = Config::parse(text, Path::new("/etc/handoff/handoff.toml")).unwrap();
    let a = &cfg.adapters["archive"];
    assert_eq!(a.package, Path::new("/etc/handoff/pkgs/archive"));
    assert_eq!(
        a.surfaces.files.directories["evidence"],
        Path::new("/etc/handoff/evidence")
    );
    assert_eq!(
        a.surfaces.http.http_ca_file.as_deref(),
        Some(Path::new("/etc/handoff/ca.pem"))
    );
    assert_eq!(
        a.secrets.sources["token"],
        SecretSource::File(PathBuf::from("/etc/handoff/secrets/token"))
    );
}

#[test]
fn retry_pauses_double_up_to_the_cap() {
    let r = Retry {
        attempts: 5,
        base_delay_ms: 100,
        max_delay_ms: 300,
    };
    let ms: Vec<u128> = (1..=5).map(|n| r.delay_before(n).as_millis()).collect();
    assert_eq!(ms, [0, 100, 200, 300, 300]);
    let err = Config::parse("[retry]\nattempts = 0\n", Path::new("h.toml")).unwrap_err();
    assert!(err.to_string().contains("retry.attempts"), "{err}");
}

#[test]
fn roles_name_instances_that_can_publish_and_chains_that_exist() {
    let parse = |roles: &str| {
        let text = format!(
            "[adapters.mail]\npackage = \"p\"\n[adapters.tracker]\npackage = \"p\"\n\
             actions = [\"set-state\"]\n{roles}"
        );
        Config::parse(&text, Path::new("h.toml")).map_err(|e| e.to_string())
    };
    let ok = parse(
        "[roles.coordinator]\nreach = [\"mail\"]\nescalate-to = \"manager\"\nafter-hours = 4\n\
         [roles.manager]\nreach = [\"mail\"]\nremind-at = 50\n",
    )
    .unwrap();
    let coordinator = &ok.roles["coordinator"];
    assert_eq!(
        (
            coordinator.escalate_to.as_deref(),
            coordinator.after_hours,
            coordinator.remind_at_percent
        ),
        (Some("manager"), Some(4), 75)
    );
    assert_eq!(ok.roles["manager"].remind_at_percent, 50);
    for (roles, expected) in [
        (
            "[roles.c]\nreach = [\"nobody\"]\n",
            "no adapter instance \"nobody\"",
        ),
        ("[roles.c]\nreach = [\"tracker\"]\n", "leaves out publish"),
        (
            "[roles.c]\nreach = [\"mail\", \"mail\"]\n",
            "roles.c.reach names \"mail\" twice",
        ),
        (
            "[roles.c]\nescalate-to = \"x\"\n",
            "roles.c.escalate-to: no role \"x\"",
        ),
        ("[roles.c]\nescalate-to = \"c\"\n", "names the role itself"),
        (
            "[roles.c]\nafter-hours = 0\nescalate-to = \"d\"\n[roles.d]\n",
            "after-hours is 0",
        ),
        (
            "[roles.c]\nafter-hours = 8785\nescalate-to = \"d\"\n[roles.d]\n",
            "after-hours is 8785; set the hours (1 to 8784",
        ),
        ("[roles.c]\nafter-hours = 3\n", "escalate-to is not"),
        ("[roles.c]\nremind-at = 100\n", "1 to 99"),
        ("[roles.c]\nremind-at = 0\n", "1 to 99"),
        (
            "[roles.c]\nrecipients = [\"a\"]\n",
            "unknown field `recipients`",
        ),
        ("[roles.\"a b\"]\n", "a role name is letters"),
    ] {
        let err = parse(roles).unwrap_err();
        assert!(err.contains(expected), "{roles}: {err}");
    }
}

#[test]
fn every_period_of_the_service_is_bounded() {
    for (setting, most) in [
        ("body-read-timeout-seconds", 3600),
        ("header-read-timeout-seconds", 3600),
        ("shutdown-grace-seconds", 86_400),
        ("reconcile-seconds", 86_400),
        ("anchor-log-seconds", 86_400),
        ("deliver-seconds", 86_400),
    ] {
        let text = format!("[serve]\n{setting} = {most}\n");
        Config::parse(&text, Path::new("h.toml")).unwrap();
        let err = refused(&format!("[serve]\n{setting} = {}\n", most + 1));
        assert!(
            err.contains(&format!("serve.{setting} is {}; use ", most + 1)),
            "{setting}: {err}"
        );
    }
    let nats = "[serve.nats]\nserver = \"127.0.0.1:4222\"\nstream = \"S\"\nsubject = \"s.>\"\n";
    let err = refused(&format!("{nats}ack-wait-seconds = 86401\n"));
    assert!(
        err.contains("serve.nats.ack-wait-seconds is 86401; use 1 to 86400"),
        "{err}"
    );
    let err = refused(&format!("{nats}ack-wait-seconds = 0\n"));
    assert!(err.contains("ack-wait-seconds is 0"), "{err}");
}

#[test]
fn the_ceiling_and_the_retries_are_bounded_where_the_sandbox_and_the_runs_can_follow() {
    for (text, says) in [
        (
            "[ceiling]\nmax-memory-mib = 4097\n",
            "ceiling.max-memory-mib is 4097; use 1 to 4096",
        ),
        ("[ceiling]\nmax-memory-mib = 0\n", "max-memory-mib is 0"),
        (
            "[ceiling]\nmax-call-timeout-ms = 43200001\n",
            "ceiling.max-call-timeout-ms is 43200001; use 1 to 43200000",
        ),
        (
            "[retry]\nattempts = 101\n",
            "retry.attempts is 101; use 1 to 100",
        ),
        (
            "[ceiling]\nresult-bytes = 0\n",
            "ceiling.result-bytes is 0, so every adapter's answer would be refused",
        ),
        (
            "[ceiling]\nresult-list-entries = 0\n",
            "result-list-entries is 0",
        ),
        (
            "[retry]\nmax-delay-ms = 3600001\n",
            "retry.max-delay-ms is 3600001; at most 3600000",
        ),
        (
            "[retry]\nbase-delay-ms = 9223372036854775807\n",
            "retry.base-delay-ms is 9223372036854775807",
        ),
    ] {
        let err = refused(text);
        assert!(err.contains(says), "{text}: {err}");
    }
    // The bounds themselves are taken, and the lease grows to follow the
    // longest call.
    let most = "[ceiling]\nmax-memory-mib = 4096\nmax-call-timeout-ms = 43200000\n\
                [retry]\nattempts = 100\nbase-delay-ms = 3600000\nmax-delay-ms = 3600000\n";
    let config = Config::parse(most, Path::new("h.toml")).unwrap();
    assert_eq!(config.lease.as_secs(), 86_400);
}

#[test]
fn runs_in_flight_are_bounded_by_the_room_the_sandbox_can_reserve_for_their_instances() {
    let with = |instances: usize, runs: usize| {
        let mut text = format!("[serve]\nmax-in-flight = {runs}\n");
        for i in 0..instances {
            text.push_str(&format!("[adapters.a{i}]\npackage = \"p\"\n"));
        }
        Config::parse(&text, Path::new("h.toml"))
    };
    // Six instances, as the example has: (1528 + 8) x 6 = 9216.
    assert!(with(6, 1528).is_ok());
    let err = with(6, 1529).unwrap_err().to_string();
    assert!(
        err.contains("serve.max-in-flight is 1529 with 6 adapter instances")
            && err.contains("at most 1528 runs in flight"),
        "{err}"
    );
    // One instance leaves room for the most the service drives.
    assert!(with(1, 4096).is_ok());
}

#[test]
fn no_adapter_directory_reaches_the_store_the_cache_the_configuration_or_a_secret() {
    let root = tempfile::tempdir().unwrap();
    let at = |p: &str| root.path().join(p);
    for dir in [
        "state/notify",
        "state/cache",
        "secrets",
        "certs",
        "etc",
        "ctx",
        "elsewhere",
    ] {
        std::fs::create_dir_all(at(dir)).unwrap();
    }
    std::os::unix::fs::symlink(at("state"), at("state-link")).unwrap();
    let config = |bound: &str| {
        format!(
            "[store]\npath = \"{}\"\ncache-dir = \"{}\"\n[serve]\ncontext = \"{}\"\n\
             [adapters.notify]\npackage = \"p\"\ndirectories = {{ records = \"{bound}\" }}\n\
             secrets = {{ key = {{ file = \"{}\" }} }}\nhttp-ca-file = \"{}\"\n",
            at("state/handoff.db").display(),
            at("state/cache").display(),
            at("ctx/context.json").display(),
            at("secrets/key").display(),
            at("certs/ca.pem").display(),
        )
    };
    for fine in ["state/notify", "elsewhere", "state-link/notify"] {
        Config::parse(&config(&at(fine).display().to_string()), &at("etc/h.toml"))
            .unwrap_or_else(|e| panic!("{fine}: {e}"));
    }
    for (bound, what) in [
        ("state", "the store"),
        ("state/../state/.", "the store"),
        ("state-link", "the store"),
        (".", "the store"),
        ("state/cache", "the artifact cache"),
        ("state/cache/x86", "the artifact cache"),
        ("secrets", "a secret file of adapters.notify"),
        ("certs", "a CA file of adapters.notify"),
        ("etc", "the configuration file"),
        ("ctx", "the service's workflow context"),
    ] {
        let err = Config::parse(&config(&at(bound).display().to_string()), &at("etc/h.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("adapters.notify.directories.records") && err.contains(what),
            "{bound}: {err}"
        );
    }
}

#[test]
fn the_public_url_is_the_start_of_a_link_to_a_packet() {
    let url = |u: &str| {
        Config::parse(
            &format!("[serve]\npublic-url = \"{u}\"\n"),
            Path::new("h.toml"),
        )
        .map(|c| c.serve.public_url.unwrap())
        .map_err(|e| e.to_string())
    };
    assert_eq!(
        url("https://handoff.example.internal/").unwrap(),
        "https://handoff.example.internal"
    );
    assert_eq!(
        url("http://127.0.0.1:8480/handoff").unwrap(),
        "http://127.0.0.1:8480/handoff"
    );
    for (given, why) in [
        ("javascript:alert(1)", "not an http or https address"),
        ("ftp://files.example", "not an http or https address"),
        ("https://user:pw@h.example", "user name or password"),
        ("https://h.example/ui?x=1", "query or fragment"),
        ("https://h.example/#top", "query or fragment"),
        ("https://h.example/a b", "white space"),
        ("https://", "not an address"),
    ] {
        let err = url(given).unwrap_err();
        assert!(err.contains(why), "{given}: {err}");
    }
    let long = format!("https://h.example/{}", "p".repeat(3000));
    let err = url(&long).unwrap_err();
    assert!(err.contains("at most 2048") && err.len() < 600, "{err}");
}

#[test]
fn a_source_is_named_as_an_event_can_carry_it() {
    let source = |name: &str| {
        format!(
            "[serve.sources.\"{name}\"]\nsignature = \"standard-webhooks\"\n\
             secrets = [{{ env = \"S\" }}]\n"
        )
    };
    Config::parse(&source("governance/release-reviews"), Path::new("h.toml")).unwrap();
    for (name, why) in [
        (String::new(), "is empty"),
        ("s".repeat(1100), "at most"),
        ("a\\u202eb".to_string(), "another order"),
        ("a\\tb".to_string(), "control character"),
    ] {
        let err = refused(&source(&name));
        assert!(err.contains(why) && err.len() < 600, "{name:?}: {err}");
    }
}
