// The fleet page: asks for the operator's token (kept for this tab only),
// fetches the fleet report with it and shows it. No call content, no phone
// number, no per-unit call figures ever reach it (fleet_report.go).
"use strict";

const statusNames = {
  never_paired: "未配对 never paired",
  paired: "已配对 paired",
  offline_7d: "离线超7天 offline >7 d",
  needs_repair: "需要维修 needs repair",
  revoked: "已停用 revoked",
};

// The parts a unit that needs repair names (protocol.Fault*).
const partNames = {
  button: "按钮 button",
  camera: "摄像头 camera",
  microphone: "麦克风 microphone",
  speaker: "扬声器 speaker",
  storage: "存储 storage",
};

function parts(list) {
  return list.map((p) => partNames[p] || p).join(", ");
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
}

function fixed(v, digits) {
  return v.toFixed(digits);
}

function when(iso) {
  if (!iso) return "—";
  return new Date(iso).toLocaleString();
}

function show(rep) {
  document.getElementById("generated").textContent =
    "生成于 generated " + when(rep.generated_at) + " · 本周自 week from " + when(rep.week_start);
  const sites = document.querySelector("#sites tbody");
  sites.textContent = "";
  for (const s of rep.sites || []) {
    const tr = document.createElement("tr");
    tr.dataset.site = s.site;
    cell(tr, s.region);
    cell(tr, s.site);
    cell(tr, String(s.units), "num");
    for (const k of ["never_paired", "paired", "offline_7d", "needs_repair", "revoked"]) {
      cell(tr, String((s.status && s.status[k]) || 0), "num");
    }
    // Which parts the units that need repair named, how many each.
    const broken = Object.entries(s.faults || {}).filter(([, n]) => n > 0);
    cell(tr, broken.length ? broken.map(([p, n]) => (partNames[p] || p) + " ×" + n).join(", ") : "—", "faults");
    if (s.shown) {
      cell(tr, fixed(s.calls_per_child, 1), "num");
      cell(tr, fixed(s.minutes_per_child, 1), "num");
      cell(tr, Math.round(s.with_call * 100) + "%", "num");
    } else {
      cell(tr, "—", "num");
      cell(tr, "—", "num");
      cell(tr, "—", "num");
    }
    sites.appendChild(tr);
  }
  const units = document.querySelector("#units tbody");
  units.textContent = "";
  for (const u of rep.units || []) {
    const tr = document.createElement("tr");
    tr.dataset.unit = u.unit;
    tr.dataset.status = u.status;
    tr.dataset.faults = (u.faults || []).join(",");
    cell(tr, u.unit);
    cell(tr, u.region);
    cell(tr, u.site);
    cell(tr, (statusNames[u.status] || u.status) + (u.faults && u.faults.length ? " (" + parts(u.faults) + ")" : "") +
      (u.online ? " · 在线 online" : ""), "status-" + u.status);
    cell(tr, when(u.last_seen));
    cell(tr, u.version || "—");
    units.appendChild(tr);
  }
  document.getElementById("login").hidden = true;
  document.getElementById("report").hidden = false;
  document.body.dataset.state = "report";
}

async function load(token) {
  const res = await fetch("/fleet/api/report", {
    headers: { Authorization: "Bearer " + token },
    cache: "no-store",
  });
  if (res.status === 401) {
    sessionStorage.removeItem("tuanju-fleet-token");
    document.getElementById("login-error").textContent = "令牌不对 (wrong token)";
    document.body.dataset.state = "login";
    return;
  }
  if (!res.ok) {
    document.getElementById("login-error").textContent = "出错了 (error " + res.status + ")";
    document.body.dataset.state = "error";
    return;
  }
  sessionStorage.setItem("tuanju-fleet-token", token);
  show(await res.json());
}

document.getElementById("login").addEventListener("submit", (e) => {
  e.preventDefault();
  load(document.getElementById("token").value.trim());
});

const saved = sessionStorage.getItem("tuanju-fleet-token");
if (saved) load(saved);
