// Every sentence the parent's page and its service worker show, in
// Simplified Chinese (zh, the default) and English (en): key → {zh, en}.
// A sentence is whole in each language, never one half in each; {name}
// is a parameter (the same names in both). The page shows one language at
// a time: Chinese unless the browser asks for English first
// (navigator.languages), see pick.
//
// A classic script, not a module, so that the service worker can load it
// too (importScripts); it defines self.tuanjuI18n. The table is JSON between
// the two markers: a Go test (messages_test.go) reads it, checks that every
// key has both languages with the same parameters, and that no sentence of
// the page is written anywhere else.
(function (g) {
  'use strict';
  const MESSAGES = /* messages:begin */ {
    "app.title": {"zh": "团聚", "en": "Tuanju"},
    "app.title_unseen": {"zh": "（{count}）团聚", "en": "({count}) Tuanju"},

    "status.connecting": {"zh": "正在连接…", "en": "Connecting…"},
    "status.reconnecting": {"zh": "正在重新连接…", "en": "Reconnecting…"},

    "pair.title": {"zh": "配对手机", "en": "Pair this phone"},
    "pair.waiting": {"zh": "正在等待终端…", "en": "Waiting for the terminal…"},
    "pair.hint": {"zh": "请按一下孩子终端上的大按钮确认。", "en": "Press the big button on the child's terminal to confirm."},
    "pair.retry": {"zh": "重试", "en": "Try again"},
    "pair.scan": {"zh": "请用这部手机的相机扫描孩子终端上的二维码进行配对。", "en": "Scan the QR label on the child's terminal with this phone's camera to pair."},
    "pair.not_paired": {"zh": "未配对。", "en": "Not paired."},
    "pair.not_yet": {"zh": "这部手机还没有配对。", "en": "This phone is not paired yet."},

    "pair.err.already_paired": {"zh": "该终端已与另一部手机配对。请联系技术人员重置。", "en": "This terminal is already paired with another phone. Ask the technician to reset it."},
    "pair.err.device_offline": {"zh": "孩子的终端不在线。请确认终端已开机并联网，然后重试。", "en": "The child's terminal is not online. Check that it is switched on and connected to the internet, then try again."},
    "pair.err.unknown_device": {"zh": "服务器找不到这个终端。请确认扫描的是这台终端上的标签，或联系技术人员。", "en": "The server does not know this terminal. Check that you scanned the label on the right terminal, or ask the technician."},
    "pair.err.rate_limited": {"zh": "尝试次数太多。请等一分钟后再试。", "en": "Too many tries. Please wait one minute, then try again."},
    "pair.err.pair_busy": {"zh": "另一部手机正在和这台终端配对。请等一分钟再试；如果那部手机也是您的，请在那部手机上完成配对。", "en": "Another phone is pairing with this terminal right now. Wait a minute and try again; if that phone is yours too, finish the pairing there."},
    "pair.err.bad_accept_proof": {"zh": "确认信息不是来自您的终端，这部手机没有配对。请重试；如果一直这样，请联系技术人员。", "en": "The confirmation did not come from your terminal, so this phone was NOT paired. Try again; if it keeps happening, tell the technician."},
    "pair.err.wrong_device": {"zh": "应答的不是标签上的终端，这部手机没有配对。请联系技术人员。", "en": "Another device answered instead of the terminal on the label, so this phone was NOT paired. Tell the technician."},
    "pair.err.bad_link": {"zh": "配对链接不完整。请重新扫描终端上的二维码。", "en": "This pairing link is damaged. Scan the QR label on the terminal again."},
    "pair.err.insecure_context": {"zh": "此页面没有通过安全连接（https://）打开，手机无法安全配对。请按二维码上的链接原样打开。", "en": "This page was not opened over a secure (https://) connection, so the phone cannot do the pairing safely. Open the link from the QR label exactly as printed."},
    "pair.err.internal": {"zh": "服务器出错了。请过几分钟再试。", "en": "The server had a problem. Please try again in a few minutes."},
    "pair.err.pair_unfinished": {"zh": "配对没有完成，这部手机没有配对。请重新扫描终端上的二维码。", "en": "The pairing did not finish, so this phone is NOT paired. Scan the QR label on the terminal to pair again."},
    "pair.err.auth_failed": {"zh": "这部手机已不再与终端配对。请重新扫描终端上的二维码。", "en": "This phone is no longer paired with the terminal. Scan the QR label on the terminal to pair again."},
    "pair.err.unpaired": {"zh": "终端已被重置，这部手机已不再与它配对。如需重新配对，请按住终端按钮3秒，直到蓝灯亮起，然后扫描二维码。", "en": "This terminal was reset, so this phone is no longer paired with it. To pair again, hold the terminal's button for 3 seconds until the blue light glows, then scan its QR code."},
    "pair.err.other": {"zh": "出错了（{code}）。请重试。", "en": "Something went wrong ({code}). Please try again."},

    "pair.reject.timeout": {"zh": "一分钟内没有按终端上的按钮。请重试，然后按一下大按钮。", "en": "The button on the terminal was not pressed within one minute. Try again, then press the big button."},
    "pair.reject.declined": {"zh": "终端上取消了配对（按钮被按住了）。请重试，并短按一下按钮。", "en": "Pairing was cancelled on the terminal (the button was held down). Try again and give the button a short press."},
    "pair.reject.bad_secret": {"zh": "终端不接受这个链接。请重新扫描终端上的二维码。", "en": "The terminal did not accept this link. Scan the QR label on the terminal again."},
    "pair.reject.bad_proof": {"zh": "终端无法确认这部手机。请重试。", "en": "The terminal could not confirm this phone. Try again."},
    "pair.reject.store_failed": {"zh": "终端无法保存配对：它的存储已满或出了故障。配对没有完成。请联系技术人员检查终端。", "en": "The terminal could not save the pairing: its storage is full or failing. Nothing was paired. Ask the technician to check the terminal."},
    "pair.reject.not_pairable": {"zh": "终端现在不能配对。请按住终端按钮3秒，直到蓝灯亮起，然后重试。", "en": "The terminal is not open for pairing. Hold its button for 3 seconds until the blue light glows, then try again."},
    "pair.reject.other": {"zh": "终端拒绝了配对（{reason}）。请重试。", "en": "The terminal refused to pair ({reason}). Try again."},

    "presence.checking": {"zh": "检查中…", "en": "Checking…"},
    "presence.connecting": {"zh": "正在连接服务器…", "en": "Connecting to the server…"},
    "presence.ready": {"zh": "孩子的终端已就绪", "en": "Your child's terminal is ready"},
    "presence.online": {"zh": "孩子的终端在线", "en": "Your child's terminal is online"},
    "presence.in_call": {"zh": "孩子的终端正在通话中", "en": "Your child's terminal is in a call"},
    "presence.needs_repair": {"zh": "孩子的终端需要维修", "en": "Your child's terminal needs repair"},
    "presence.needs_repair_parts": {"zh": "孩子的终端需要维修（{parts}）", "en": "Your child's terminal needs repair ({parts})"},
    "presence.offline": {"zh": "孩子的终端离线（没有网络）", "en": "Your child's terminal is offline (no network)"},
    "presence.revoked": {"zh": "孩子的终端已被项目停用", "en": "Your child's terminal is switched off by the programme"},
    "presence.pairing_pending": {"zh": "正在完成配对…", "en": "Finishing the pairing…"},

    "part.button": {"zh": "按钮", "en": "the button"},
    "part.camera": {"zh": "摄像头", "en": "the camera"},
    "part.microphone": {"zh": "麦克风", "en": "the microphone"},
    "part.speaker": {"zh": "扬声器", "en": "the speaker"},
    "part.storage": {"zh": "存储", "en": "its storage"},
    "list.join": {"zh": "{a}、{b}", "en": "{a}, {b}"},

    "note.connecting": {"zh": "这部手机正在连接服务器，暂时不知道终端的状态。", "en": "This phone is connecting to the server, so it does not know how the terminal is right now."},
    "note.offline": {"zh": "终端现在不在线，可能已关机或没有网络。", "en": "The terminal is offline now. It may be switched off or have no internet."},
    "note.needs_repair": {"zh": "终端坏了，现在打不通电话。请告诉项目方或学校，请他们安排维修。", "en": "The terminal is broken and cannot take calls now. Please tell the programme or the school so that they can repair it."},
    "note.revoked": {"zh": "项目已停用这台终端（例如报告丢失或被盗）。请联系项目方或学校。", "en": "The programme has switched this terminal off (for example, it was reported lost or stolen). Please contact the programme or the school."},
    "note.pairing_pending": {"zh": "配对时终端断线了。终端重新上线后，配对会完成（或取消）；请保持此页面打开。", "en": "The terminal went offline while pairing. Pairing finishes (or is undone) as soon as it is back online; keep this page open."},
    "note.no_server": {"zh": "尚未连接服务器，请稍候。", "en": "No connection to the server yet. Please wait a moment."},
    "banner.reconnecting": {"zh": "网络断开，正在重新连接…", "en": "No connection — reconnecting…"},

    "budget.used": {"zh": "本月流量：已用 {used} MB，共 {total} MB，{until}重新计算。通话：{limit}。", "en": "This month's data: {used} of {total} MB used; it starts again on {until}. Calls: {limit}."},
    "budget.low": {"zh": "本月流量快用完了：已用 {used} MB，共 {total} MB。为了省流量，{until}之前通话只有声音，没有画面。", "en": "This month's data is nearly used up: {used} of {total} MB. To save what is left, calls are voice only, without pictures, until {until}."},
    "budget.spent": {"zh": "本月流量已用完：已用 {used} MB，共 {total} MB。{until}之前通话只有声音，没有画面；孩子仍然可以给您打电话。", "en": "This month's data is used up: {used} of {total} MB. Until {until}, calls are voice only, without pictures; your child can still call you."},
    "budget.until": {"zh": "{month}月{day}日", "en": "{month}/{day}"},
    "budget.limit.normal": {"zh": "清晰视频", "en": "clear video"},
    "budget.limit.low": {"zh": "省流量视频", "en": "data-saving video"},
    "budget.limit.very_low": {"zh": "小画面省流量视频", "en": "small, data-saving video"},
    "budget.limit.audio_only": {"zh": "仅语音", "en": "voice only"},
    "call.voice_only": {"zh": "本月流量快用完了，这次通话只有声音。", "en": "This month's data is nearly used up, so this call is voice only."},

    "home.call": {"zh": "呼叫", "en": "Call"},

    "alerts.title": {"zh": "来电提醒", "en": "Call alerts"},
    "alerts.turn_on": {"zh": "开启来电提醒", "en": "Turn on call alerts"},
    "alerts.status.on": {"zh": "即使关闭此页面，这部手机也会在孩子来电时响铃。", "en": "This phone rings for your child's calls, even with this page closed."},
    "alerts.status.denied": {"zh": "此页面的通知被阻止了。请在浏览器设置中允许，或使用下面的短信提醒。", "en": "Notifications are blocked for this page. Allow them in the browser's settings, or use text messages below."},
    "alerts.status.unsupported": {"zh": "此浏览器在页面关闭时无法响铃。请保持页面打开，或使用下面的短信提醒。", "en": "This browser cannot ring when the page is closed. Keep the page open, or use text messages below."},
    "alerts.status.off": {"zh": "开启来电提醒，页面关闭时手机也会响铃。", "en": "Turn on call alerts so this phone rings even when the page is closed."},
    "sms.label": {"zh": "未接听时短信提醒我", "en": "Text me when I miss the ring"},
    "sms.consent": {"zh": "我同意项目保存此号码，用于孩子来电时给我发短信或打电话，直到我删除它。", "en": "I agree that the programme keeps this number to text or call me about my child's calls, until I remove it."},
    "sms.save": {"zh": "保存", "en": "Save"},
    "sms.remove": {"zh": "删除号码", "en": "Remove number"},
    "sms.saved_sms": {"zh": "如未接听，将向 {phone} 发送短信。", "en": "If you do not answer, you get a text message at {phone}."},
    "sms.saved_voice": {"zh": "如未接听，将向 {phone} 发送短信；如仍未接听，再打电话给您。", "en": "If you do not answer, you get a text message at {phone}, then a phone call if the call is missed."},
    "phone.err.bad_phone": {"zh": "请输入手机号码，例如 138 1234 5678。", "en": "Please enter a mobile number, e.g. 138 1234 5678."},
    "phone.err.no_consent": {"zh": "请先勾选同意。", "en": "Please tick the box to agree first."},
    "phone.err.offline": {"zh": "尚未连接服务器，请重试。", "en": "No connection to the server. Please try again."},
    "phone.err.other": {"zh": "号码无法保存。", "en": "The number could not be saved."},

    "log.title": {"zh": "通话记录", "en": "Recent calls"},
    "log.empty": {"zh": "暂无通话。", "en": "No calls yet."},
    "log.from_child": {"zh": "孩子{when} 来电 — {outcome}", "en": "Your child called {when} — {outcome}"},
    "log.from_parent": {"zh": "您{when} 呼叫孩子 — {outcome}", "en": "You called {when} — {outcome}"},
    "log.with_length": {"zh": "{outcome}，{length}", "en": "{outcome}, {length}"},
    "log.missed_summary": {"zh": "孩子{when} 来电，您没有接到", "en": "Your child called {when} — missed"},
    "outcome.answered": {"zh": "已接通", "en": "answered"},
    "outcome.missed": {"zh": "未接", "en": "missed"},
    "outcome.declined": {"zh": "已拒绝", "en": "declined"},
    "outcome.cancelled": {"zh": "已取消", "en": "cancelled"},
    "outcome.failed": {"zh": "失败", "en": "failed"},
    "outcome.interrupted": {"zh": "中断", "en": "interrupted"},
    "outcome.ringing": {"zh": "响铃中", "en": "ringing"},
    "outcome.other": {"zh": "状态：{outcome}", "en": "{outcome}"},
    "length.short": {"zh": "不到1分钟", "en": "under 1 min"},
    "length.minutes": {"zh": "{n}分钟", "en": "{n} min"},
    "when.today": {"zh": "今天 {time}", "en": "at {time}"},
    "when.yesterday": {"zh": "昨天 {time}", "en": "yesterday at {time}"},
    "when.date": {"zh": "{month}月{day}日 {time}", "en": "on {month}/{day} at {time}"},

    "incoming.title": {"zh": "孩子来电", "en": "Your child is calling"},
    "incoming.hint": {"zh": "点一下屏幕就能听到铃声。", "en": "Tap anywhere to hear the ring."},
    "incoming.answer": {"zh": "接听", "en": "Answer"},
    "incoming.decline": {"zh": "拒绝", "en": "Decline"},

    "outgoing.title": {"zh": "正在呼叫…", "en": "Calling…"},
    "outgoing.ringing": {"zh": "孩子家里的终端正在响铃…", "en": "Ringing at your child's home…"},
    "outgoing.cancel": {"zh": "取消", "en": "Cancel"},

    "call.weak": {"zh": "信号弱…", "en": "Weak connection…"},
    "call.mute": {"zh": "静音", "en": "Mute"},
    "call.unmute": {"zh": "取消静音", "en": "Unmute"},
    "call.hangup": {"zh": "挂断", "en": "Hang up"},
    "call.quality": {"zh": "{quality} · 流量 {total}（↑{sent} ↓{received}）", "en": "{quality} · data {total} (↑{sent} ↓{received})"},
    "quality.good": {"zh": "良好", "en": "Good"},
    "quality.fair": {"zh": "一般", "en": "Fair"},
    "quality.poor": {"zh": "差", "en": "Poor"},
    "quality.unknown": {"zh": "…", "en": "…"},

    "ended.ok": {"zh": "好", "en": "OK"},
    "ended.call_ended": {"zh": "通话结束", "en": "Call ended"},
    "ended.call_failed": {"zh": "通话失败", "en": "Call failed"},
    "ended.ring_failed": {"zh": "呼叫失败", "en": "The call did not go through"},
    "ended.connection_lost": {"zh": "网络断开", "en": "Connection lost"},
    "ended.missed": {"zh": "未接来电", "en": "Missed call"},
    "ended.answered_elsewhere": {"zh": "已在其他设备接听", "en": "Answered on another device"},
    "ended.terminal_offline": {"zh": "孩子的终端不在线", "en": "Your child's terminal is offline"},
    "ended.declined": {"zh": "对方已拒绝", "en": "Call declined"},
    "ended.busy": {"zh": "对方忙", "en": "Busy"},
    "ended.no_answer": {"zh": "无人接听", "en": "No answer"},
    "ended.not_paired": {"zh": "未配对", "en": "Not paired"},
    "ended.needs_repair": {"zh": "终端需要维修", "en": "The terminal needs repair"},
    "detail.child_hung_up": {"zh": "您接听前孩子挂断了。", "en": "Your child hung up before you answered."},
    "detail.nobody_in_time": {"zh": "孩子来电，但没有及时接听。", "en": "Your child called, but nobody answered in time."},
    "detail.ring_terminal_offline": {"zh": "孩子的终端断网了。", "en": "Your child's terminal went offline."},
    "detail.maybe_off": {"zh": "它可能已关机或没有网络。", "en": "It may be switched off or have no internet."},
    "detail.busy": {"zh": "终端正在通话中。", "en": "The terminal is already in a call."},
    "detail.nobody_pressed": {"zh": "没有人按终端的按钮。请稍后再试。", "en": "Nobody pressed the button. Try again later."},
    "detail.connection_dropped": {"zh": "网络连接中断了。", "en": "The internet connection dropped."},
    "detail.connection_lost": {"zh": "连接已断开。", "en": "The connection was lost."},
    "detail.terminal_offline": {"zh": "终端已离线。", "en": "The terminal went offline."},
    "detail.not_from_terminal": {"zh": "应答不是来自孩子的终端。", "en": "The answer did not come from your child's terminal."},
    "detail.setup_failed": {"zh": "无法建立视频通话。", "en": "The video call could not be set up."},
    "detail.video_failed": {"zh": "视频无法连接，网络可能太弱。", "en": "Could not connect the video. The network may be too weak."},
    "detail.server_said": {"zh": "服务器返回：{code}。", "en": "The server said: {code}."},
    "detail.needs_repair": {"zh": "终端修好之前打不通电话。请告诉项目方或学校。", "en": "Calls cannot get through until the terminal is repaired. Please tell the programme or the school."},
    "detail.failed": {"zh": "终端无法接通这次通话。", "en": "The terminal could not take the call."},
    "ended.data": {"zh": "已用流量：{total}（发送 {sent}，接收 {received}）。", "en": "Data used: {total} (sent {sent}, received {received})."},

    "notify.ring_title": {"zh": "孩子来电", "en": "Your child is calling"},
    "notify.ring_body": {"zh": "点按接听", "en": "Tap to answer"},
    "notify.missed_body": {"zh": "孩子在 {time} 来电", "en": "Your child called at {time}"},
    "notify.answered_title": {"zh": "已接听", "en": "Answered"}
  } /* messages:end */;

  const LANGS = ['zh', 'en'];

  // pick chooses the language from the browser's preferences, in order:
  // the first that is Chinese (any script or region) or English decides;
  // anything else, or nothing, is Chinese.
  function pick(languages) {
    for (const l of languages || []) {
      const primary = String(l).toLowerCase().split(/[-_]/)[0];
      if (LANGS.includes(primary)) return primary;
    }
    return 'zh';
  }

  // htmlLang is the language tag for <html lang>.
  function htmlLang(lang) {
    return lang === 'en' ? 'en' : 'zh-CN';
  }

  // format is the sentence key in lang with its {parameters} filled in. A
  // missing key shows the key itself (a bug made visible, never a blank).
  function format(lang, key, params) {
    const m = MESSAGES[key];
    if (!m) return key;
    const text = m[lang] || m.zh;
    return text.replace(/\{([a-z_]+)\}/g, (all, name) => (params && params[name] != null ? String(params[name]) : all));
  }

  g.tuanjuI18n = { MESSAGES, LANGS, pick, htmlLang, format };
})(self);
