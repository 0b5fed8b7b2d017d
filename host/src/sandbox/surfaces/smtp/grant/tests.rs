//! The SMTP grant: transports, logins, senders and domains parsed, and
//! approvals stored before transports were scoped.

use super::*;

#[test]
fn grants_need_exact_addresses_and_domains() {
    let plain = &Transport::Plain;
    let ok = parse_grant(
        "127.0.0.1:25",
        plain,
        None,
        &["Handoff@Example.Internal".into()],
        &["example.internal".into()],
    )
    .unwrap();
    assert_eq!(ok[1].value, "handoff@example.internal");
    let bad = |server: &str, senders: &[&str], domains: &[&str]| {
        let s: Vec<String> = senders.iter().map(|x| x.to_string()).collect();
        let d: Vec<String> = domains.iter().map(|x| x.to_string()).collect();
        parse_grant(server, plain, None, &s, &d).is_err()
    };
    assert!(bad("127.0.0.1:25", &["not an address"], &["a.b"]));
    assert!(bad("127.0.0.1:25", &["a@b.c"], &["*.b.c"]));
    assert!(bad("127.0.0.1:25", &["a@b.c"], &["@b.c"]));
    assert!(bad("127.0.0.1:25", &[], &["b.c"]));
    assert!(bad("mail.example:25", &["a@b.c"], &["b.c"]));
}

#[test]
fn tls_names_the_certificate_and_plain_text_is_the_default() {
    assert_eq!(parse_transport(None, None), Ok(Transport::Plain));
    assert_eq!(parse_transport(Some("none"), None), Ok(Transport::Plain));
    assert_eq!(
        parse_transport(Some("starttls"), Some("SMTP.Example.Internal")),
        Ok(Transport::StartTls("smtp.example.internal".into()))
    );
    let implicit = parse_transport(Some("implicit"), Some("smtp.example.internal")).unwrap();
    assert_eq!(
        implicit,
        Transport::ImplicitTls("smtp.example.internal".into())
    );
    assert_eq!(
        Transport::from_scope_value(&implicit.scope_value()),
        Some(implicit)
    );
    for (tls, name, says) in [
        (Some("starttls"), None, "needs tls-name"),
        (Some("implicit"), None, "tls = \"implicit\" needs tls-name"),
        (Some("none"), Some("smtp.example.internal"), "goes with"),
        (
            Some("starttls"),
            Some("*.example.internal"),
            "not a DNS name",
        ),
        (Some("implicit"), Some("smtp example"), "not a DNS name"),
        (Some("tls"), None, "\"none\" (plain text), \"starttls\""),
        (Some("ssl"), None, "\"implicit\" (TLS from the first byte"),
    ] {
        let err = parse_transport(tls, name).unwrap_err();
        assert!(err.contains(says), "{tls:?} {name:?}: {err}");
    }
}

#[test]
fn a_login_goes_only_over_tls_and_names_its_secret() {
    let tls = Transport::StartTls("mx.b.c".into());
    let login = parse_login(&tls, "handoff@b.c", "smtp_password").unwrap();
    let scopes: BTreeSet<SmtpScope> = parse_grant(
        "127.0.0.1:587",
        &tls,
        Some(&login),
        &["a@b.c".into()],
        &["b.c".into()],
    )
    .unwrap()
    .into_iter()
    .collect();
    let server: SocketAddr = "127.0.0.1:587".parse().unwrap();
    let policy = super::super::gate::MailPolicy::load(scopes.clone(), None, |secret| {
        assert_eq!(secret, "smtp_password");
        Ok("hunter2".into())
    })
    .unwrap();
    assert_eq!(
        policy.credentials.get(&server),
        Some(&("handoff@b.c".to_string(), "hunter2".to_string()))
    );
    assert!(policy.tls.contains_key(&server));
    assert!(!format!("{policy:?}").contains("hunter2"), "{policy:?}");
    let shown: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
    assert!(
        shown.contains(
            &"smtp 127.0.0.1:587 login as handoff@b.c (password: secret smtp_password)".into()
        ),
        "{shown:?}"
    );
    for (transport, user, secret, says) in [
        (
            &Transport::Plain,
            "handoff@b.c",
            "smtp_password",
            "never sent in plain text",
        ),
        (&tls, "two words", "smtp_password", "one word"),
        (&tls, "handoff@b.c", "not a name!", "the name of a secret"),
    ] {
        let err = parse_login(transport, user, secret).unwrap_err();
        assert!(err.contains(says), "{err}");
    }
}

#[test]
fn an_approval_from_before_transports_were_scoped_reads_as_plain_text() {
    let server: SocketAddr = "127.0.0.1:25".parse().unwrap();
    let stored = serde_json::json!([
        { "server": "127.0.0.1:25", "kind": "sender", "value": "a@b.c" },
        { "server": "127.0.0.1:25", "kind": "recipient-domain", "value": "b.c" },
    ]);
    let text = stored.to_string();
    let scopes: SmtpScopes = serde_json::from_str(&text).unwrap();
    assert_eq!(transport_of(&scopes, server), Some(Transport::Plain));

    let mut two: BTreeSet<SmtpScope> = parse_grant(
        "127.0.0.1:25",
        &Transport::Plain,
        None,
        &["a@b.c".into()],
        &["b.c".into()],
    )
    .unwrap()
    .into_iter()
    .collect();
    two.extend(
        parse_grant(
            "127.0.0.1:25",
            &Transport::StartTls("mx.b.c".into()),
            None,
            &["a@b.c".into()],
            &["b.c".into()],
        )
        .unwrap(),
    );
    let err = one_transport_per_server(&mut two).unwrap_err();
    assert!(err.contains("one transport per server"), "{err}");
}
