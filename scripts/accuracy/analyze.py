"""Offline accuracy figures (issue #19, item 5) from `sextant eval --json` output and the local
trace store, until `sextant eval` has code scorers for them: fact accuracy (numbers and single
words matched whole), needless tool calls, chat-template markup in answers, loops (a sentence
three times in the answer, its source list aside, or the token cap), inline `[n]` citations, latency.

    python3 scripts/accuracy/analyze.py DATA_DIR REPORT.json DATASET.jsonl KIND MAX_TOKENS

Run by `scripts/accuracy/measure.sh`, which says how to run the whole benchmark.
"""
import json, re, sqlite3, sys, statistics, collections, os

DB = None
MARKUP = ["<tool_response>", "</tool_response>", "<tool_call>", "</tool_call>", "<|im_", "<tools>"]

def body(answer):
    i = answer.find("\n\nSources:\n")
    return answer if i < 0 else answer[:i]

def spans_of(con, trace_id):
    rows = con.execute("select name, attributes from spans where trace_id=? order by start_time_unix_nano", (trace_id,)).fetchall()
    return [(n, json.loads(a)) for n, a in rows]

def finish_reasons(attrs):
    v = attrs.get("gen_ai.response.finish_reasons")
    if v is None: return []
    if isinstance(v, str):
        try: v = json.loads(v)
        except Exception: v = [v]
    return v if isinstance(v, list) else [v]

def fact_present(fact, text):
    t = text.lower().replace("\u2212", "-")
    f = fact.lower()
    if re.fullmatch(r"-?\d+(\.\d+)?", f):
        t2 = re.sub(r"(?<=\d),(?=\d{3}\b)", "", t)  # 5,555 -> 5555
        return re.search(r"(?<![\d.])" + re.escape(f) + r"(?![\d]|\.\d)", t2) is not None
    if re.fullmatch(r"[a-z]+", f):
        return re.search(r"\b" + re.escape(f) + r"\b", t) is not None
    return f in t

def loops(answer, chat_spans, max_tokens):
    sents = [s.strip().lower() for s in re.split(r"[.!?\n]+", answer) if len(s.strip()) >= 3]
    c = collections.Counter(sents)
    rep = max(c.values()) if c else 0
    capped = any("length" in finish_reasons(a) for _, a in chat_spans) or any(
        max_tokens and int(a.get("gen_ai.usage.output_tokens", 0) or 0) >= max_tokens for _, a in chat_spans)
    return rep >= 3, capped

def main(report_path, dataset_path, kind, max_tokens):
    rep = json.load(open(report_path))
    ds = [json.loads(l) for l in open(dataset_path) if l.strip() and not l.startswith("//")]
    con = sqlite3.connect(DB)
    per = []
    for row, d in zip(rep["rows"], ds):
        ans = row.get("answer") or ""
        spans = spans_of(con, row["trace_id"]) if row.get("trace_id") else []
        tools = [(a.get("gen_ai.tool.name"), a.get("gen_ai.tool.call.arguments"), a.get("gen_ai.tool.call.result"), a.get("error.type"))
                 for n, a in spans if n.startswith("execute_tool")]
        chats = [(n, a) for n, a in spans if n.startswith("chat")]
        facts = d["expectations"].get("expected_facts", [])
        fp = [fact_present(f, body(ans)) for f in facts]
        rep3, capped = loops(body(ans), chats, max_tokens)
        per.append(dict(row=row["row"], q=row["question"], answer=ans, error=row.get("error"),
                        latency=row["latency_ms"], tools=tools, facts=facts, fact_ok=all(fp) if fp else None,
                        facts_hit=sum(fp), facts_n=len(fp),
                        markup=[m for m in MARKUP if m in ans], cites=bool(re.search(r"\[\d+\]", body(ans))),
                        rep3=rep3, capped=capped, out_tokens=row["usage"].get("output_tokens"),
                        finish=[finish_reasons(a) for _, a in chats]))
    n = len(per)
    pct = lambda k: f"{k}/{n} = {100*k/n:.0f}%"
    lat = [p["latency"] for p in per]
    print(f"== {kind}: {n} rows, failed turns {sum(1 for p in per if p['error'])}")
    print(f"mean latency {statistics.mean(lat)/1000:.1f} s, p50 {statistics.median(lat)/1000:.1f} s, max {max(lat)/1000:.1f} s; "
          f"output tokens mean {statistics.mean(p['out_tokens'] or 0 for p in per):.0f}")
    loop = [p for p in per if p["rep3"] or p["capped"]]
    print(f"loop rate (sentence x3+ or token cap): {pct(len(loop))}  (repeats {sum(p['rep3'] for p in per)}, capped {sum(p['capped'] for p in per)})")
    print(f"markup in answer: {pct(sum(1 for p in per if p['markup']))}")
    print(f"any tool called: {pct(sum(1 for p in per if p['tools']))}; tool names: {collections.Counter(t[0] for p in per for t in p['tools'])}")
    print(f"facts all present: {pct(sum(1 for p in per if p['fact_ok']))}; facts hit {sum(p['facts_hit'] for p in per)}/{sum(p['facts_n'] for p in per)}")
    print(f"inline [n] citation in body: {pct(sum(p['cites'] for p in per))}")
    json.dump(per, open(report_path.replace(".json", ".per_row.json"), "w"), indent=1)
    return per

if __name__ == "__main__":
    DB = os.path.join(sys.argv[1], "traces.db")
    main(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
