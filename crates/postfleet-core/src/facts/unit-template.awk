# postfleet facts probe, part: which systemd unit runs each Postfix instance, read from the
# host's own template unit. Input: `systemctl cat postfix@.service` (the unit file and its
# drop-ins, as systemd reads them). ENVIRON["PF_INSTANCES"]: one "NAME<TAB>CONFIG_DIR" line
# per instance. Prints, tab-separated:
#   template KIND PATTERN   KIND: config-dir (the template derives MAIL_CONFIG from the unit
#                           instance, e.g. /etc/postfix-%I: Debian 13), postmulti-name (it
#                           runs `postmulti -i %i`: Debian 12), or none (no template, or one
#                           that fits neither rule)
#   unitof NAME UNIT        the template unit that runs instance NAME (no line: none does)
# The default instance may also run under postfix.service: the caller decides that from the
# unit's own type (see facts/mod.rs).

# systemd's escaping of a string into a unit instance (what %I unescapes): "/" becomes "-",
# [A-Za-z0-9:_] stay, "." stays except first, every other byte becomes \xNN.
function escape(s,    out, i, c) {
  out = ""
  for (i = 1; i <= length(s); i++) {
    c = substr(s, i, 1)
    if (c == "/") out = out "-"
    else if (c ~ /[A-Za-z0-9:_]/ || (c == "." && i > 1)) out = out c
    else out = out sprintf("\\x%02x", ord[c])
  }
  return out
}

# A verbatim (%i) instance string must already be a valid one.
function verbatim_ok(s) { return s != "" && s ~ /^[A-Za-z0-9:_.\\-]+$/ }

# The value of VAR=... in an Environment= line ("" when absent), quotes honoured.
function assigned(line, var,    start, rest, q) {
  if (!match(line, "(^|[ \t\"'])" var "=")) return ""
  rest = substr(line, RSTART + RLENGTH)
  q = substr(line, RSTART, 1)
  if (q == "\"" || q == "'") { sub(q ".*", "", rest); return rest }
  sub(/[ \t].*/, "", rest)
  return rest
}

BEGIN { for (i = 1; i < 256; i++) ord[sprintf("%c", i)] = i; seen = 0 }
{ sub(/\r$/, "") }
/^#/ || /^[ \t]*$/ { next }
{ seen = 1 }
/^\[/ { section = $0; next }
section == "[Service]" && /^Environment=/ {
  v = substr($0, 13)
  if (v == "") mail_config = ""  # an empty assignment resets the list
  else if ((a = assigned(v, "MAIL_CONFIG")) != "") mail_config = a
  next
}
section == "[Service]" && /^ExecStart=/ { exec_start = substr($0, 11); next }
section == "[Unit]" && /^AssertPathExists=/ { assert_path = substr($0, 18); next }

END {
  kind = "none"; pattern = ""
  if (mail_config == "" && assert_path ~ /\/main\.cf$/)
    mail_config = substr(assert_path, 1, length(assert_path) - 8)
  sub(/^!?\|?/, "", mail_config)
  # exactly one %i or %I, and no other specifier
  probe = mail_config; n = gsub(/%[iI]/, "", probe)
  if (seen && n == 1 && probe !~ /%/) {
    kind = "config-dir"; pattern = mail_config
    at = index(mail_config, "%"); spec = substr(mail_config, at + 1, 1)
    prefix = substr(mail_config, 1, at - 1); suffix = substr(mail_config, at + 2)
  } else if (seen && exec_start ~ /postmulti/ && match(exec_start, /-i %[iI]([ \t]|$)/)) {
    kind = "postmulti-name"; pattern = "postmulti -i %" substr(exec_start, RSTART + 4, 1)
    spec = substr(exec_start, RSTART + 4, 1)
  }
  print "template\t" kind "\t" pattern
  count = split(ENVIRON["PF_INSTANCES"], lines, "\n")
  for (l = 1; l <= count; l++) {
    if (split(lines[l], f, "\t") < 2) continue
    name = f[1]; dir = f[2]; key = ""
    if (kind == "config-dir") {
      if (length(dir) > length(prefix) + length(suffix) &&
          substr(dir, 1, length(prefix)) == prefix &&
          substr(dir, length(dir) - length(suffix) + 1) == suffix)
        key = substr(dir, length(prefix) + 1, length(dir) - length(prefix) - length(suffix))
    } else if (kind == "postmulti-name") key = name
    if (key == "") continue
    if (spec == "I") print "unitof\t" name "\tpostfix@" escape(key)
    else if (verbatim_ok(key)) print "unitof\t" name "\tpostfix@" key
  }
}
