//! The OpenAPI document: every route named, each answering as documented.

use super::*;

#[test]
fn the_openapi_document_names_every_route_and_each_one_answers_as_documented() {
    let (_s, service, _) = served();
    let (code, doc) = call(&service, "GET", "/v1/openapi.json", None, None);
    assert_eq!(code, 200, "{doc}");
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let mut operations: Vec<String> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations.push(format!("{} {path}", method.to_uppercase()));
            assert!(
                op["responses"]["401"].is_object(),
                "{method} {path}: 401 documented"
            );
            assert_eq!(op["security"][0]["bearer"], json!([]), "{method} {path}");
            // Each documented route exists: without a token it is refused
            // as unauthenticated, not missing.
            let concrete = path.replace("{id}", "1");
            let body = (method == "post").then_some("{}");
            let (code, refused) = call(&service, &method.to_uppercase(), &concrete, None, body);
            assert_eq!(
                (code, refused["reason"].as_str()),
                (401, Some("unauthenticated")),
                "{method} {path}"
            );
        }
    }
    operations.sort();
    assert_eq!(
        operations,
        [
            "GET /v1/audit/head",
            "GET /v1/follow-ups",
            "GET /v1/follow-ups/{id}",
            "GET /v1/runs",
            "GET /v1/runs/{id}",
            "POST /v1/follow-ups/{id}/ack",
            "POST /v1/follow-ups/{id}/resolve",
        ]
    );
    let resolve = &doc["components"]["schemas"]["ResolveBody"];
    assert_eq!(resolve["required"], json!(["action"]), "{resolve}");
}
