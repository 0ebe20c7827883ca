"""Regenerates the promtool unit tests in this folder: python3 deploy/prometheus/tests/generate_tests.py"""
import os

import yaml

os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))

def counter(*pieces):
    """pieces: (increment per step, steps). Returns promtool notation, continuous."""
    out=[]; v=0.0; first=True
    for inc, n in pieces:
        if first:
            out.append(f"{v:g}+{inc:g}x{n}"); v += inc*n; first=False
        else:
            start=v+inc
            out.append(f"{start:g}+{inc:g}x{n-1}"); v = start+inc*(n-1)
    return " ".join(out)

def req(config, version, variation, outcome, pieces, error_type=None):
    lab = f'config="{config}",version="{version}",variation="{variation}",outcome="{outcome}"'
    lab += f',error_type="{error_type or "none"}",finish_reason="{"error" if outcome=="error" else "stop"}"'
    lab += ',segment="none",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini"'
    lab += f',served_by="{"none" if outcome == "error" else "primary"}"'
    return {"series": f"canaryflow_requests_total{{{lab}}}", "values": counter(*pieces)}

def common(config, version, variation):
    return (f'config="{config}",version="{version}",variation="{variation}",segment="none",'
            'gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini"')

def hist(name, config, version, variation, buckets, extra=""):
    """buckets: {le: pieces}"""
    out=[]
    for le, pieces in buckets.items():
        out.append({"series": f'{name}_bucket{{{common(config,version,variation)}{extra},served_by="primary",le="{le}"}}',
                    "values": counter(*pieces)})
    return out
ANN = {'CanaryflowCandidateErrorRateAboveStable': {'summary': 'support-bot candidate v2 fails 10% of requests, 2 points above stable', 'description': 'Error types: `sum by (error_type) (rate(canaryflow_requests_total{config="support-bot",outcome="error"}[5m]))`.'}, 'CanaryflowCandidateLatencyAboveStable': {'summary': 'support-bot candidate v2 p95 latency 2.406s is 20 % above stable', 'description': 'A rollout of this candidate should fail its latency gate; check `canaryflow rollout status support-bot`.'}, 'CanaryflowOutputTokensDrift': {'summary': 'drift-bot v2 output tokens per request moved 50% from the same hour last week', 'description': "Same version, different behaviour: check the provider's model and the traffic mix."}, 'CanaryflowLatencyDrift': {'summary': 'drift-bot v2 p95 latency 2.417s, 50 % above the same hour last week', 'description': 'Same version, slower provider: compare with `canaryflow compare drift-bot --window 1h`.'}, 'CanaryflowErrorRateIncrease': {'summary': 'support-bot v1 (stable) error rate 10%, twice its last hour', 'description': 'Provider trouble or a bad prompt; fallbacks: canaryflow_fallbacks_total.'}, 'CanaryflowLatencyDegradation': {'summary': 'support-bot v1 (stable) p95 latency 9.25s, 50 % above its usual level', 'description': 'The provider or the prompt got slower; compare with `canaryflow compare support-bot --window 1h`.'}, 'CanaryflowCostAnomaly': {'summary': 'support-bot v1 (stable) costs 0.003 USD per request, 50 % above its usual level', 'description': 'Cost per request over 5m is more than 1.5x its median over the last hour (longer answers, a pricier model or a fallback). Compare versions with `canaryflow compare support-bot`.'}, 'CanaryflowQualityDrop': {'summary': 'support-bot v1 (stable) negative feedback 30.77%, 10 points above its day', 'description': 'Read what users disliked: `canaryflow feedback support-bot --version 1 --negative`.'}}

RULES = ["../rules/canaryflow.rules.yml"]
LAT = "gen_ai_client_operation_duration_seconds"

def dump(path, doc, header):
    with open(path, "w") as f:
        f.write(header)
        yaml.safe_dump(doc, f, sort_keys=False, width=200)

# ---------------------------------------------------------------- candidate vs stable
S = []
for cfg in ("support-bot", "faq-bot", "tiny-bot"):
    S += [req(cfg, 1, "stable", "success", [(99, 30)]), req(cfg, 1, "stable", "error", [(1, 30)], "server_error")]
    S += hist(LAT, cfg, 1, "stable", {"0.5": [(90, 30)], "1": [(100, 30)], "2.5": [(100, 30)], "+Inf": [(100, 30)]})
S += [req("support-bot", 2, "candidate", "success", [(18, 30)]), req("support-bot", 2, "candidate", "error", [(2, 30)], "rate_limit")]
S += hist(LAT, "support-bot", 2, "candidate", {"0.5": [(2, 30)], "1": [(4, 30)], "2.5": [(20, 30)], "+Inf": [(20, 30)]})
S += [req("faq-bot", 3, "candidate", "success", [(39, 30)]), req("faq-bot", 3, "candidate", "error", [(1, 30)], "timeout")]
S += hist(LAT, "faq-bot", 3, "candidate", {"0.5": [(36, 30)], "1": [(40, 30)], "2.5": [(40, 30)], "+Inf": [(40, 30)]})
S += [req("tiny-bot", 2, "candidate", "success", [(2, 30)]), req("tiny-bot", 2, "candidate", "error", [(2, 30)], "server_error")]
S += hist(LAT, "tiny-bot", 2, "candidate", {"0.5": [(0, 30)], "1": [(0, 30)], "2.5": [(0, 30)], "+Inf": [(4, 30)]})
sb2 = {"config": "support-bot", "version": "2", "variation": "candidate"}
doc = {"rule_files": RULES, "evaluation_interval": "1m", "tests": [{
    "interval": "1m", "input_series": S,
    "promql_expr_test": [
        {"expr": 'canaryflow:error_ratio:rate5m{config="support-bot"}', "eval_time": "10m",
         "exp_samples": [{"labels": 'canaryflow:error_ratio:rate5m{config="support-bot",version="1",variation="stable"}', "value": 0.01},
                         {"labels": 'canaryflow:error_ratio:rate5m{config="support-bot",version="2",variation="candidate"}', "value": 0.09999999999999999}]},
        {"expr": 'canaryflow:latency_seconds:p95_5m{config="support-bot"}', "eval_time": "10m",
         "exp_samples": [{"labels": 'canaryflow:latency_seconds:p95_5m{config="support-bot",version="1",variation="stable"}', "value": 0.7499999999999997},
                         {"labels": 'canaryflow:latency_seconds:p95_5m{config="support-bot",version="2",variation="candidate"}', "value": 1 + 1.5 * 15 / 16}]},
    ],
    "alert_rule_test": [
        {"eval_time": "1m", "alertname": "CanaryflowCandidateErrorRateAboveStable", "exp_alerts": []},
        {"eval_time": "3m", "alertname": "CanaryflowCandidateLatencyAboveStable", "exp_alerts": []},
        {"eval_time": "15m", "alertname": "CanaryflowCandidateErrorRateAboveStable",
         "exp_alerts": [{"exp_labels": {**sb2, "severity": "critical"}, "exp_annotations": ANN["CanaryflowCandidateErrorRateAboveStable"]}]},
        {"eval_time": "15m", "alertname": "CanaryflowCandidateLatencyAboveStable",
         "exp_alerts": [{"exp_labels": {**sb2, "severity": "warning"}, "exp_annotations": ANN["CanaryflowCandidateLatencyAboveStable"]}]},
        {"eval_time": "15m", "alertname": "CanaryflowErrorRateIncrease", "exp_alerts": []},
        {"eval_time": "15m", "alertname": "CanaryflowCostAnomaly", "exp_alerts": []},
    ]}]}
dump("deploy/prometheus/tests/candidate_vs_stable.test.yml", doc,
     "# Candidate against stable: support-bot v2 fails 10 % of requests (stable 1 %) and is three times slower,\n"
     "# so both comparative alerts fire; faq-bot v3 stays within the margins and tiny-bot v2 has too little traffic.\n"
     "# Generated series: counters per minute. Run: promtool test rules deploy/prometheus/tests/*.test.yml\n")

# ---------------------------------------------------------------- over time
S = []
S += [req("support-bot", 1, "stable", "success", [(99, 60), (90, 30)]),
      req("support-bot", 1, "stable", "error", [(1, 60), (10, 30)], "server_error")]
S += hist(LAT, "support-bot", 1, "stable", {"0.5": [(90, 60), (0, 30)], "1": [(100, 60), (10, 30)],
          "2.5": [(100, 60), (50, 30)], "10": [(100, 60), (100, 30)], "+Inf": [(100, 60), (100, 30)]})
S += [{"series": f'canaryflow_cost_usd_total{{{common("support-bot", 1, "stable")},served_by="primary"}}', "values": counter((0.1, 60), (0.3, 30))}]
S += [req("steady-bot", 4, "stable", "success", [(99, 90)]), req("steady-bot", 4, "stable", "error", [(1, 90)], "timeout")]
S += hist(LAT, "steady-bot", 4, "stable", {"0.5": [(90, 90)], "1": [(100, 90)], "2.5": [(100, 90)], "10": [(100, 90)], "+Inf": [(100, 90)]})
S += [{"series": f'canaryflow_cost_usd_total{{{common("steady-bot", 4, "stable")},served_by="primary"}}', "values": counter((0.1, 90))}]
sb1 = {"config": "support-bot", "version": "1", "variation": "stable"}
doc = {"rule_files": RULES, "evaluation_interval": "1m", "tests": [{
    "interval": "1m", "input_series": S,
    "alert_rule_test": [
        *[{"eval_time": "60m", "alertname": a, "exp_alerts": []} for a in
          ("CanaryflowErrorRateIncrease", "CanaryflowLatencyDegradation", "CanaryflowCostAnomaly")],
        {"eval_time": "80m", "alertname": "CanaryflowErrorRateIncrease",
         "exp_alerts": [{"exp_labels": {**sb1, "severity": "critical"}, "exp_annotations": ANN["CanaryflowErrorRateIncrease"]}]},
        {"eval_time": "80m", "alertname": "CanaryflowLatencyDegradation",
         "exp_alerts": [{"exp_labels": {**sb1, "severity": "warning"}, "exp_annotations": ANN["CanaryflowLatencyDegradation"]}]},
        {"eval_time": "80m", "alertname": "CanaryflowCostAnomaly",
         "exp_alerts": [{"exp_labels": {**sb1, "severity": "warning"}, "exp_annotations": ANN["CanaryflowCostAnomaly"]}]},
    ]}]}
dump("deploy/prometheus/tests/over_time.test.yml", doc,
     "# One config against its own recent past: after an hour at 1 % errors, 0.75 s p95 and 0.001 USD per request,\n"
     "# support-bot v1 jumps to 10 % errors, ~9 s p95 and 0.003 USD; steady-bot does not change and never alerts.\n"
     "# Generated series: counters per minute. Run: promtool test rules deploy/prometheus/tests/*.test.yml\n")

# ---------------------------------------------------------------- quality and drift (5-minute steps)
DAY, WEEK = 288, 2016
S = []
S += [{"series": f'canaryflow_feedback_total{{{common("support-bot", 1, "stable")},sentiment="positive"}}', "values": counter((18, DAY), (18, 12))},
      {"series": f'canaryflow_feedback_total{{{common("support-bot", 1, "stable")},sentiment="negative"}}', "values": counter((2, DAY), (8, 12))},
      {"series": f'canaryflow_feedback_total{{{common("steady-bot", 4, "stable")},sentiment="positive"}}', "values": counter((18, DAY + 12))},
      {"series": f'canaryflow_feedback_total{{{common("steady-bot", 4, "stable")},sentiment="negative"}}', "values": counter((2, DAY + 12))}]
doc_q = {"rule_files": RULES, "evaluation_interval": "5m", "tests": [{
    "interval": "5m", "input_series": S,
    "alert_rule_test": [
        {"eval_time": "1d", "alertname": "CanaryflowQualityDrop", "exp_alerts": []},
        {"eval_time": "1d1h", "alertname": "CanaryflowQualityDrop",
         "exp_alerts": [{"exp_labels": {**sb1, "severity": "warning"}, "exp_annotations": ANN["CanaryflowQualityDrop"]}]},
    ]}]}
dump("deploy/prometheus/tests/quality.test.yml", doc_q,
     "# Quality drop: support-bot v1 had 10 % negative feedback for a day, then 31 % for an hour; steady-bot stays at 10 %.\n"
     "# Generated series: counters per 5 minutes. Run: promtool test rules deploy/prometheus/tests/*.test.yml\n")

S = []
N = WEEK + 24
for cfg, ver, drift in (("drift-bot", 2, True), ("steady-bot", 4, False)):
    S += [req(cfg, ver, "stable", "success", [(100, N)])]
    out = [(20000, WEEK), (30000 if drift else 20000, 24)]
    S += [{"series": f'gen_ai_client_token_usage_sum{{{common(cfg, ver, "stable")},gen_ai_token_type="output",served_by="primary"}}', "values": counter(*out)},
          {"series": f'gen_ai_client_token_usage_count{{{common(cfg, ver, "stable")},gen_ai_token_type="output",served_by="primary"}}', "values": counter((100, N))}]
    S += hist(LAT, cfg, ver, "stable", {"0.5": [(90, WEEK), (0 if drift else 90, 24)], "1": [(100, WEEK), (10 if drift else 100, 24)],
              "2.5": [(100, N)], "+Inf": [(100, N)]})
db = {"config": "drift-bot", "version": "2", "variation": "stable"}
doc_d = {"rule_files": RULES, "evaluation_interval": "5m", "tests": [{
    "interval": "5m", "input_series": S,
    "alert_rule_test": [
        {"eval_time": "7d", "alertname": "CanaryflowOutputTokensDrift", "exp_alerts": []},
        {"eval_time": "7d", "alertname": "CanaryflowLatencyDrift", "exp_alerts": []},
        {"eval_time": "7d2h", "alertname": "CanaryflowOutputTokensDrift",
         "exp_alerts": [{"exp_labels": {**db, "severity": "info"}, "exp_annotations": ANN["CanaryflowOutputTokensDrift"]}]},
        {"eval_time": "7d2h", "alertname": "CanaryflowLatencyDrift",
         "exp_alerts": [{"exp_labels": {**db, "severity": "info"}, "exp_annotations": ANN["CanaryflowLatencyDrift"]}]},
    ]}]}
dump("deploy/prometheus/tests/drift.test.yml", doc_d,
     "# Drift: drift-bot v2 answered with 200 output tokens at 0.75 s p95 for a week, then 300 tokens at 2.4 s for\n"
     "# two hours, same version; steady-bot does not move. Compared with the same hour last week (offset 1w).\n"
     "# Generated series: counters per 5 minutes. Run: promtool test rules deploy/prometheus/tests/*.test.yml\n")
