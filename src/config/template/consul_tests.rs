//! consul-template's functions and query forms, one test each, written from
//! consul-template's documentation. Render templates run against a fake
//! catalog that answers each dependency the way Consul would (server-side
//! tag, datacenter and `passing` filters), filled the way a render job fills
//! it: render, fetch what is missing, render again.

use std::collections::BTreeMap;

use super::*;

fn instance(node: &str, id: &str, port: u16, tags: &[&str], status: &str) -> ServiceInstance {
    ServiceInstance {
        node: node.into(),
        node_address: format!("10.0.0.{}", &node[4..]),
        node_datacenter: "dc1".into(),
        node_meta: BTreeMap::new(),
        service_meta: BTreeMap::from([("version".to_string(), port.to_string())]),
        address: format!("10.0.0.{}", &node[4..]),
        id: id.into(),
        name: id.split('-').next().unwrap().into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        status: status.into(),
        port,
    }
}

/// Every instance in the fake catalog; `web-east` lives in datacenter `east`.
fn instances() -> Vec<ServiceInstance> {
    let mut east = instance("node9", "web-east", 9000, &[], "passing");
    east.node_datacenter = "east".into();
    vec![
        instance("node2", "web-2", 8082, &["canary"], "warning"),
        instance("node1", "web-1", 8081, &["v2", "prod"], "passing"),
        instance("node1", "web-0", 8080, &["prod"], "critical"),
        instance("node3", "web-3", 8083, &["prod"], "maintenance"),
        instance("node1", "db-1", 5432, &["primary"], "passing"),
        east,
    ]
}

const KV: [(&str, &str); 8] = [
    ("app/config/", ""),
    ("app/config/name", "demo"),
    ("app/config/port", "80"),
    ("app/config/nested/a", "1"),
    ("app/flags/debug", "true"),
    ("service/kafka/brokers/1", "10.0.0.5:9092"),
    ("service/kafka/brokers/2", "10.0.0.6:9092"),
    ("json", r#"{"b":[1,2],"a":"x"}"#),
];

/// What Consul answers for `dependency`.
fn consul(dependency: &Dependency) -> Fetched {
    match dependency {
        Dependency::Service(query) => Fetched::Instances(
            instances()
                .into_iter()
                .filter(|i| i.name == query.name)
                .filter(|i| i.node_datacenter == query.dc.as_deref().unwrap_or("dc1"))
                .filter(|i| query.tag.as_ref().is_none_or(|t| i.tags.contains(t)))
                .filter(|i| !query.passing_only() || i.status == "passing")
                .collect(),
        ),
        Dependency::Services { dc } => {
            let dc = dc.as_deref().unwrap_or("dc1");
            let mut services: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for i in instances().into_iter().filter(|i| i.node_datacenter == dc) {
                services.entry(i.name).or_default().extend(i.tags);
            }
            Fetched::Services(
                services
                    .into_iter()
                    .map(|(name, mut tags)| {
                        tags.sort();
                        tags.dedup();
                        CatalogService { name, tags }
                    })
                    .collect(),
            )
        }
        Dependency::Key(key) => Fetched::Key(
            KV.iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.to_string()),
        ),
        Dependency::Prefix(prefix) => Fetched::Pairs(
            KV.iter()
                .filter(|(k, _)| k.starts_with(prefix.as_str()))
                .map(|(k, v)| KeyPair {
                    key: k.to_string(),
                    value: v.to_string(),
                })
                .collect(),
        ),
        Dependency::Datacenters => Fetched::Datacenters(vec!["east".into(), "dc1".into()]),
    }
}

/// Renders as a render job does: until nothing is missing, or until what is
/// missing cannot be fetched (an absent key: consul-template waits).
fn rendered(source: &str) -> Rendered {
    let env = Env::from([("PORT".to_string(), "8080".to_string())]);
    let mut catalog = Catalog::new();
    loop {
        let rendered = render_with_catalog(source, &env, &catalog)
            .unwrap_or_else(|e| panic!("{source:?} failed: {e} at {}", e.offset));
        let fetchable: Vec<_> = rendered
            .missing
            .iter()
            .filter(|d| !catalog.contains_key(d))
            .cloned()
            .collect();
        if fetchable.is_empty() {
            return rendered;
        }
        for dependency in fetchable {
            catalog.insert(dependency.clone(), consul(&dependency));
        }
    }
}

fn r(source: &str) -> String {
    let rendered = rendered(source);
    assert!(
        rendered.missing.is_empty(),
        "{source:?} waits for {:?}",
        rendered.missing
    );
    rendered.text
}

fn err(source: &str) -> String {
    let catalog = Catalog::new();
    render_with_catalog(source, &Env::new(), &catalog)
        .expect_err(source)
        .message
}

fn checked(source: &str) -> Result<Vec<DataCall>, String> {
    check(source).map_err(|e| format!("{}@{}", e.message, e.offset))
}

const IDS: &str = "{{ range . }}{{ .ID }} {{ end }}";

fn ids(query: &str) -> String {
    r(&format!("{{{{ with {query} }}}}{IDS}{{{{ end }}}}"))
}

#[test]
fn service_lists_passing_instances_sorted_by_node_then_id() {
    assert_eq!(ids(r#"service "web""#), "web-1 ");
    assert_eq!(r(r#"{{ service "nope" | len }}"#), "0");
    assert_eq!(r(r#"{{ if service "nope" }}y{{ else }}n{{ end }}"#), "n");
}

#[test]
fn service_any_form_as_second_argument() {
    assert_eq!(ids(r#"service "web" "any""#), "web-0 web-1 web-2 web-3 ");
}

#[test]
fn service_pipe_any_form() {
    assert_eq!(ids(r#"service "web|any""#), "web-0 web-1 web-2 web-3 ");
}

#[test]
fn service_status_list_form() {
    assert_eq!(ids(r#"service "web|passing,warning""#), "web-1 web-2 ");
    assert_eq!(ids(r#"service "web|critical,maintenance""#), "web-0 web-3 ");
}

#[test]
fn service_tag_form() {
    assert_eq!(ids(r#"service "prod.web""#), "web-1 ");
    assert_eq!(ids(r#"service "prod.web|any""#), "web-0 web-1 web-3 ");
}

#[test]
fn service_datacenter_form() {
    assert_eq!(ids(r#"service "web@east""#), "web-east ");
}

#[test]
fn service_fields() {
    assert_eq!(
        r(
            r#"{{ range service "web" }}{{ .Node }} {{ .NodeAddress }} {{ .Address }}:{{ .Port }} {{ .Name }} {{ .Status }} {{ .Tags }} {{ .ServiceMeta.version }} {{ .NodeDatacenter }}{{ end }}"#
        ),
        "node1 10.0.0.1 10.0.0.1:8081 web passing [prod v2] 8081 dc1"
    );
    assert_eq!(
        r(r#"{{ printf "%T" (service "web") }}"#),
        "[]*dependency.HealthService"
    );
}

#[test]
fn service_query_errors_are_consul_templates() {
    let rendered = render_with_catalog(r#"{{ service "web|nope" }}"#, &Env::new(), &Catalog::new());
    assert_eq!(
        rendered.unwrap_err().message,
        "error calling service: health.service: invalid filter: \"nope\" in \"web|nope\""
    );
    assert!(err(r#"{{ service "a b" }}"#).contains("health.service: invalid format: \"a b\""));
}

#[test]
fn tags_contains_method_and_in_and_contains() {
    let each = |test: &str| {
        r(&format!(
            r#"{{{{ range service "web" "any" }}}}{{{{ if {test} }}}}{{{{ .ID }}}} {{{{ end }}}}{{{{ end }}}}"#
        ))
    };
    assert_eq!(each(r#".Tags.Contains "prod""#), "web-0 web-1 web-3 ");
    assert_eq!(each(r#"in .Tags "canary""#), "web-2 ");
    assert_eq!(each(r#".Tags | contains "v2""#), "web-1 ");
    assert_eq!(
        r(r#"{{ in "haystack" "st" }} {{ "x" | contains "y" }}"#),
        "true false"
    );
}

#[test]
fn contains_all_any_none_not_all() {
    let tags = r#"(split "," "prod,v2")"#;
    let each = |name: &str| {
        r(&format!(
            r#"{{{{ range service "web" "any" }}}}{{{{ if .Tags | {name} {tags} }}}}{{{{ .ID }}}} {{{{ end }}}}{{{{ end }}}}"#
        ))
    };
    assert_eq!(each("containsAll"), "web-1 ");
    assert_eq!(each("containsAny"), "web-0 web-1 web-3 ");
    assert_eq!(each("containsNone"), "web-2 ");
    assert_eq!(each("containsNotAll"), "web-0 web-2 web-3 ");
}

#[test]
fn services_lists_the_catalog_by_name_with_tags() {
    assert_eq!(
        r("{{ range services }}{{ .Name }}={{ .Tags }};{{ end }}"),
        "db=[primary];web=[canary prod v2];"
    );
    assert_eq!(
        r(r#"{{ range services "@east" }}{{ .Name }}{{ end }}"#),
        "web"
    );
}

#[test]
fn key_renders_the_value_and_waits_for_an_absent_key() {
    assert_eq!(
        r(r#"{{ key "app/config/name" }}:{{ key "/app/config/port" }}"#),
        "demo:80"
    );
    let waiting = rendered(r#"[{{ key "app/missing" }}]"#);
    assert_eq!(
        waiting.missing.into_iter().collect::<Vec<_>>(),
        [Dependency::Key("app/missing".into())]
    );
    assert_eq!(waiting.text, "[]");
}

#[test]
fn key_exists() {
    assert_eq!(
        r(r#"{{ keyExists "app/flags/debug" }} {{ keyExists "app/none" }}"#),
        "true false"
    );
}

#[test]
fn key_or_default_and_its_old_name() {
    assert_eq!(
        r(
            r#"{{ keyOrDefault "app/config/name" "x" }} {{ keyOrDefault "app/none" "fallback" }} {{ key_or_default "app/none" "old" }}"#
        ),
        "demo fallback old"
    );
}

#[test]
fn ls_lists_one_level_without_folders() {
    assert_eq!(
        r(r#"{{ range ls "app/config" }}{{ .Key }}={{ .Value }};{{ end }}"#),
        "name=demo;port=80;"
    );
    assert_eq!(
        r(r#"{{ range ls "nothing/here" }}x{{ else }}empty{{ end }}"#),
        "empty"
    );
}

#[test]
fn tree_lists_every_key_below_the_prefix() {
    assert_eq!(
        r(r#"{{ range tree "app/config/" }}{{ .Key }}={{ .Value }} ({{ .Path }});{{ end }}"#),
        "name=demo (app/config/name);nested/a=1 (app/config/nested/a);port=80 (app/config/port);"
    );
}

#[test]
fn safe_ls_and_safe_tree_wait_for_data() {
    for function in ["safeLs", "safeTree"] {
        let waiting = rendered(&format!(r#"{{{{ {function} "nothing" }}}}"#));
        assert_eq!(waiting.missing.len(), 1, "{function}");
        assert_eq!(
            r(&format!(
                r#"{{{{ range {function} "app/flags" }}}}{{{{ .Key }}}}{{{{ end }}}}"#
            )),
            "debug"
        );
    }
}

#[test]
fn datacenters_are_sorted() {
    assert_eq!(r("{{ datacenters }}"), "[dc1 east]");
    assert_eq!(r("{{ datacenters true | len }}"), "2");
}

#[test]
fn by_key_groups_a_tree_by_its_first_segment() {
    assert_eq!(
        r(
            r#"{{ range $top, $pairs := tree "service/" | byKey }}{{ $top }}:{{ range $k, $p := $pairs }} {{ $k }}={{ $p.Value }}{{ end }};{{ end }}"#
        ),
        "kafka: brokers/1=10.0.0.5:9092 brokers/2=10.0.0.6:9092;"
    );
}

#[test]
fn by_tag_groups_services_by_tag() {
    assert_eq!(
        r(
            r#"{{ range $tag, $s := service "web" "any" | byTag }}{{ $tag }}:{{ range $s }} {{ .ID }}{{ end }};{{ end }}"#
        ),
        "canary: web-2;prod: web-0 web-1 web-3;v2: web-1;"
    );
}

#[test]
fn explode_and_to_json() {
    assert_eq!(
        r(r#"{{ tree "app/config" | explode | toJSON }}"#),
        r#"{"name":"demo","nested":{"a":"1"},"port":"80"}"#
    );
}

#[test]
fn to_json_pretty() {
    assert_eq!(
        r(r#"{{ key "json" | parseJSON | toJSONPretty }}"#),
        "{\n  \"a\": \"x\",\n  \"b\": [\n    1,\n    2\n  ]\n}"
    );
}

#[test]
fn to_yaml() {
    assert_eq!(
        r(r#"{{ tree "app/config" | explode | toYAML }}"#),
        "name: demo\nnested:\n  a: \"1\"\nport: \"80\""
    );
}

#[test]
fn parse_json() {
    assert_eq!(
        r(r#"{{ with key "json" | parseJSON }}{{ .a }} {{ index .b 1 }} {{ len .b }}{{ end }}"#),
        "x 2 2"
    );
    assert_eq!(r(r#"{{ parseJSON "" | len }}"#), "0");
    assert_eq!(
        r(r#"{{ key "json" | parseJSON }} {{ printf "%v" (parseJSON "{\"k\":true}") }}"#),
        "map[a:x b:[1 2]] map[k:true]"
    );
}

#[test]
fn scratch_set_get_key_setx_and_maps() {
    assert_eq!(
        r(
            r#"{{ scratch.Set "a" "1" }}{{ scratch.SetX "a" "2" }}{{ scratch.SetX "b" "3" }}{{ scratch.Get "a" }}{{ scratch.Get "b" }} {{ scratch.Key "a" }} {{ scratch.Key "z" }}"#
        ),
        "13 true false"
    );
    assert_eq!(
        r(
            r#"{{ scratch.MapSet "m" "y" "2" }}{{ scratch.MapSet "m" "x" "1" }}{{ scratch.MapSetX "m" "x" "9" }}{{ scratch.MapValues "m" }}"#
        ),
        "[1 2]"
    );
    assert_eq!(
        r(
            r#"{{ range service "web" "any" }}{{ scratch.MapSet "nodes" .Node .NodeAddress }}{{ end }}{{ range scratch.MapValues "nodes" }}{{ . }} {{ end }}"#
        ),
        "10.0.0.1 10.0.0.2 10.0.0.3 "
    );
}

#[test]
fn timestamp_default_is_rfc3339_utc_and_takes_a_layout() {
    let now = r("{{ timestamp }}");
    let shape = regex::Regex::new(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$").unwrap();
    assert!(shape.is_match(&now), "{now}");
    assert_eq!(r(r#"{{ timestamp "2006" }}"#), now[..4]);
    let unix: i64 = r(r#"{{ timestamp "unix" }}"#).parse().unwrap();
    assert!(unix > 1_600_000_000);
}

#[test]
fn parse_bool_int_uint_float() {
    assert_eq!(
        r(
            r#"{{ parseBool "true" }} {{ parseBool "" }} {{ parseInt "-42" }} {{ parseUint "7" }} {{ parseFloat "1.5" }} {{ key "app/flags/debug" | parseBool }}"#
        ),
        "true false -42 7 1.5 true"
    );
    assert_eq!(
        err(r#"{{ parseInt "x" }}"#),
        "error calling parseInt: parseInt: strconv.ParseInt: parsing \"x\": invalid syntax"
    );
    assert!(err(r#"{{ parseBool "maybe" }}"#).contains("invalid syntax"));
}

#[test]
fn regex_match() {
    assert_eq!(
        r(r#"{{ regexMatch "^web-[0-9]+$" "web-12" }} {{ "db" | regexMatch "^web" }}"#),
        "true false"
    );
}

#[test]
fn string_helpers() {
    assert_eq!(
        r(
            r#"{{ toLower "AbC" }} {{ toUpper "AbC" }} {{ toTitle "hello big world" }} [{{ trimSpace "  x  " }}]"#
        ),
        "abc ABC Hello Big World [x]"
    );
    assert_eq!(r(r#"{{ "a\nb" | indent 2 }}"#), "  a\n  b");
    assert_eq!(
        r(r#"{{ envOrDefault "PORT" "1" }} {{ envOrDefault "NONE" "1" }}"#),
        "8080 1"
    );
}

#[test]
fn split_join_replace_all_regex_replace_all() {
    assert_eq!(
        r(
            r#"{{ split "," "a,b" | join ";" }} {{ replaceAll "." "_" "a.b" }} {{ regexReplaceAll "[0-9]" "N" "a1b2" }}"#
        ),
        "a;b a_b aNbN"
    );
}

#[test]
fn base64_encode_and_decode() {
    assert_eq!(
        r(
            r#"{{ base64Encode "hi?>" }} {{ base64Decode "aGk/Pg==" }} {{ base64URLEncode "hi?>" }} {{ base64URLDecode "aGk_Pg==" }}"#
        ),
        "aGk/Pg== hi?> aGk_Pg== hi?>"
    );
    assert!(err(r#"{{ base64Decode "!" }}"#).starts_with("error calling base64Decode"));
}

#[test]
fn arithmetic_takes_the_piped_value_as_left_operand() {
    assert_eq!(
        r("{{ add 1 2 }} {{ 7 | subtract 2 }} {{ 3 | multiply 4 }} {{ 10 | divide 4 }} {{ 10 | modulo 4 }} {{ 1.5 | add 1 }} {{ minimum 3 5 }} {{ maximum 3 5 }}"),
        "3 5 12 2 2 2.5 3 5"
    );
    assert_eq!(r(r#"{{ key "app/config/port" | parseInt | add 1 }}"#), "81");
    assert_eq!(
        err("{{ 1 | divide 0 }}"),
        "error calling divide: divide: division by 0"
    );
    assert!(err(r#"{{ add "1" 2 }}"#).contains("unknown type"));
}

#[test]
fn sprig_aliases() {
    assert_eq!(
        r(
            r#"{{ sprig_upper "a" }} {{ "www.x" | sprig_trimPrefix "www." }} {{ sprig_hasSuffix ".com" "a.com" }} {{ sprig_b64enc "hi" }}"#
        ),
        "A x true aGk="
    );
}

#[test]
fn data_functions_exist_only_in_render_templates() {
    for source in [r#"{{ key "a" }}"#, "{{ services }}", r#"{{ tree "a" }}"#] {
        let message = render(source, &Env::new()).unwrap_err().message;
        assert!(
            message.contains("only in the templates of jobs[].render"),
            "{message}"
        );
    }
    assert_eq!(render(r#"{{ toUpper "ok" }}"#, &Env::new()).unwrap(), "OK");
}

#[test]
fn check_refuses_unknown_functions_with_the_reason() {
    assert_eq!(
        checked("x {{ nope }}").unwrap_err(),
        "function \"nope\" not defined@5"
    );
    assert_eq!(
        checked(r#"{{ secret "a" }}"#).unwrap_err(),
        "function \"secret\" not defined (consul-template's secret is left out: Vault is not supported)@3"
    );
    assert!(checked(r#"{{ sprig_semver "1" }}"#)
        .unwrap_err()
        .contains("only the sprig functions listed"));
}

#[test]
fn check_refuses_wrong_argument_counts() {
    assert_eq!(
        checked(r#"{{ key "a" "b" }}"#).unwrap_err(),
        "wrong number of args for key: want 1 got 2@3"
    );
    assert_eq!(
        checked(r#"{{ "a" | keyOrDefault }}"#).unwrap_err(),
        "wrong number of args for keyOrDefault: want 2 got 1@9"
    );
    assert_eq!(
        checked("{{ if (timestamp 1 2) }}{{ end }}").unwrap_err(),
        "wrong number of args for timestamp: want 0 to 1 got 2@7"
    );
    assert_eq!(
        checked("{{ len services }}{{ range service }}{{ end }}").unwrap_err(),
        "wrong number of args for service: want at least 1 got 0@27"
    );
    assert!(checked(r#"{{ "a" | keyOrDefault "k" }}{{ scratch.Set "a" 1 }}"#).is_ok());
}

#[test]
fn check_refuses_malformed_service_queries() {
    assert_eq!(
        checked(r#"{{ range service "web|everything" }}{{ end }}"#).unwrap_err(),
        "error calling service: health.service: invalid filter: \"everything\" in \"web|everything\"@17"
    );
    assert!(checked(r#"{{ service "web" "bogus" }}"#).is_err());
    assert!(checked(r#"{{ services "east" }}"#).is_err());
    assert!(checked(
        r#"{{ service "prod.web@east|any" }}{{ services "@east" }}{{ service .Name }}"#
    )
    .is_ok());
}
