//! API Gateway's HTTP API in front of the functions: a request goes to the function of the
//! template route it matches (API Gateway's most specific match), as a payload-2.0 event, and
//! the function's answer becomes the HTTP response; a request no route matches is API Gateway's
//! own 404, which no function sees.

use serde_json::{Map, Value, json};

use super::stack_doc::Route;

/// An HTTP API (payload 2.0) request as API Gateway sends it for an IAM-signed call through the
/// named stage: the stage in `rawPath`, the query both raw and parsed, the caller's identity.
pub struct HttpEvent<'a> {
    pub method: &'a str,
    /// Without the stage: `/tasks?limit=2`.
    pub path_and_query: &'a str,
    pub body: Option<&'a str>,
    /// `POST /tasks/{id}/precheck`.
    pub route_key: &'a str,
    pub stage: &'a str,
    pub path_parameters: Option<Map<String, Value>>,
    pub account: &'a str,
    pub api_id: &'a str,
    pub request_id: &'a str,
}

impl HttpEvent<'_> {
    pub fn to_json(&self) -> Value {
        let (path, query) = self
            .path_and_query
            .split_once('?')
            .unwrap_or((self.path_and_query, ""));
        let raw_path = if self.stage == "$default" {
            path.to_owned()
        } else {
            format!("/{}{path}", self.stage)
        };
        let domain = format!(
            "{}.execute-api.{}.amazonaws.com",
            self.api_id,
            super::REGION
        );
        let mut headers = json!({
            "accept": "application/json",
            "host": domain,
            "user-agent": "awscurl/0.36",
            "x-amz-date": "20261124T093000Z",
            "x-amzn-trace-id": "Root=1-6742f3a8-0a1b2c3d4e5f60718293a4b5",
            "x-forwarded-for": "198.51.100.7",
            "x-forwarded-port": "443",
            "x-forwarded-proto": "https",
            "content-length": self.body.map_or(0, str::len).to_string(),
        });
        if self.body.is_some() {
            headers["content-type"] = json!("application/json");
        }
        let account = self.account;
        let mut event = json!({
            "version": "2.0",
            "routeKey": self.route_key,
            "rawPath": raw_path,
            "rawQueryString": query,
            "headers": headers,
            "requestContext": {
                "accountId": account,
                "apiId": self.api_id,
                "authorizer": { "iam": {
                    "accessKey": "ASIAEXAMPLEKEY000001",
                    "accountId": account,
                    "callerId": "AROAEXAMPLEROLE00001:operator",
                    "cognitoIdentity": null,
                    "principalOrgId": null,
                    "userArn": format!("arn:aws:sts::{account}:assumed-role/tidemark-operator/operator"),
                    "userId": "AROAEXAMPLEROLE00001:operator"
                } },
                "domainName": domain,
                "domainPrefix": self.api_id,
                "http": {
                    "method": self.method,
                    "path": raw_path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": "198.51.100.7",
                    "userAgent": "awscurl/0.36"
                },
                "requestId": self.request_id,
                "routeKey": self.route_key,
                "stage": self.stage,
                "time": "24/Nov/2026:09:30:00 +0000",
                "timeEpoch": 1_795_426_200_000_u64
            },
            "isBase64Encoded": false
        });
        if !query.is_empty() {
            let mut params = Map::new();
            for pair in query.split('&') {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                params.insert(k.to_owned(), json!(v));
            }
            event["queryStringParameters"] = Value::Object(params);
        }
        if let Some(params) = &self.path_parameters {
            event["pathParameters"] = Value::Object(params.clone());
        }
        if let Some(body) = self.body {
            event["body"] = json!(body);
        }
        event
    }
}

/// The route API Gateway picks for `method path` (no stage), with its path parameters: among
/// the routes whose method (or `ANY`) and path match, the most specific — no greedy variable
/// before one, more literal segments before fewer, the method before `ANY`.
pub fn match_route<'r>(
    routes: &'r [Route],
    method: &str,
    path: &str,
) -> Option<(&'r Route, Map<String, Value>)> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    routes
        .iter()
        .filter(|r| r.method == "ANY" || r.method.eq_ignore_ascii_case(method))
        .filter_map(|r| {
            let params = match_path(&r.path, &segments)?;
            let pattern: Vec<&str> = r.path.trim_start_matches('/').split('/').collect();
            let greedy = pattern.iter().any(|p| p.ends_with("+}"));
            let literal = pattern.iter().filter(|p| !p.starts_with('{')).count();
            let exact_method = r.method != "ANY";
            Some(((!greedy, literal, exact_method), r, params))
        })
        .max_by_key(|(rank, _, _)| *rank)
        .map(|(_, r, params)| (r, params))
}

fn match_path(pattern: &str, segments: &[&str]) -> Option<Map<String, Value>> {
    let pattern: Vec<&str> = pattern.trim_start_matches('/').split('/').collect();
    let mut params = Map::new();
    for (i, p) in pattern.iter().enumerate() {
        if let Some(name) = p.strip_prefix('{').and_then(|p| p.strip_suffix("+}")) {
            // A greedy variable takes the rest: at least one segment.
            let rest = segments.get(i..).filter(|r| !r.is_empty())?;
            if rest.iter().all(|s| s.is_empty()) {
                return None;
            }
            params.insert(name.to_owned(), json!(rest.join("/")));
            return Some(params);
        }
        let segment = segments.get(i)?;
        if let Some(name) = p.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            if segment.is_empty() {
                return None;
            }
            params.insert(name.to_owned(), json!(segment));
        } else if p != segment {
            return None;
        }
    }
    (segments.len() == pattern.len()).then_some(params)
}

/// What API Gateway answers for a function's payload-2.0 response: its `statusCode` and JSON
/// body (`Null` when empty); a response without `statusCode` is a 200 with the response as the
/// body.
pub fn http_answer(response: &Value) -> (u16, Value) {
    let Some(status) = response.get("statusCode").and_then(Value::as_u64) else {
        return (200, response.clone());
    };
    let body = match response["body"].as_str() {
        None | Some("") => Value::Null,
        Some(text) => serde_json::from_str(text).unwrap_or_else(|_| json!(text)),
    };
    (u16::try_from(status).unwrap_or(500), body)
}

/// API Gateway's own answers: no route, and a function that failed.
pub fn not_found() -> (u16, Value) {
    (404, json!({ "message": "Not Found" }))
}

pub fn internal_error() -> (u16, Value) {
    (500, json!({ "message": "Internal Server Error" }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> Vec<Route> {
        [
            ("POST", "/connections/test", "P"),
            ("GET", "/tasks", "M"),
            ("POST", "/tasks", "C"),
            ("POST", "/tasks/{id}/precheck", "P"),
            ("ANY", "/tasks/{proxy+}", "M"),
        ]
        .into_iter()
        .map(|(m, p, f)| Route {
            method: m.into(),
            path: p.into(),
            function: f.into(),
        })
        .collect()
    }

    fn pick(method: &str, path: &str) -> Option<(String, String)> {
        let routes = routes();
        match_route(&routes, method, path).map(|(r, _)| (r.function.clone(), r.path.clone()))
    }

    #[test]
    fn the_most_specific_route_wins_and_others_are_not_found() {
        assert_eq!(pick("POST", "/tasks"), Some(("C".into(), "/tasks".into())));
        assert_eq!(pick("GET", "/tasks"), Some(("M".into(), "/tasks".into())));
        assert_eq!(
            pick("POST", "/tasks/t1/precheck"),
            Some(("P".into(), "/tasks/{id}/precheck".into()))
        );
        assert_eq!(
            pick("GET", "/tasks/t1/precheck"),
            Some(("M".into(), "/tasks/{proxy+}".into()))
        );
        assert_eq!(
            pick("DELETE", "/tasks/t1"),
            Some(("M".into(), "/tasks/{proxy+}".into()))
        );
        assert_eq!(pick("GET", "/health"), None);
        assert_eq!(pick("DELETE", "/tasks"), None);
        assert_eq!(pick("GET", "/tasks/"), None);
        assert_eq!(pick("GET", "/connections/test"), None);
    }

    #[test]
    fn path_parameters_are_given() {
        let routes = routes();
        let (_, params) = match_route(&routes, "GET", "/tasks/t1/runs/2027").expect("a route");
        assert_eq!(params["proxy"], "t1/runs/2027");
        let (_, params) = match_route(&routes, "POST", "/tasks/t9/precheck").expect("a route");
        assert_eq!(params["id"], "t9");
    }
}
