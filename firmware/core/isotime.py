# UTC epoch seconds <-> ISO 8601 ("2026-12-03T18:20:00Z"), as OCPP timestamps are written
# (OCPP 1.6 §3.15: UTC, at least seconds). Pure: no clock reads, no port epoch assumptions
# (days-from-civil arithmetic, so ports counting from 2000 and from 1970 agree).


def _days_from_civil(y, m, d):
    y -= m <= 2
    era = (y if y >= 0 else y - 399) // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil(z):
    z += 719468
    era = (z if z >= 0 else z - 146096) // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (m <= 2), m, d


def iso(epoch_s):
    """'YYYY-MM-DDTHH:MM:SSZ' for UTC epoch seconds (1970-based)."""
    days, s = divmod(int(epoch_s), 86400)
    y, m, d = _civil(days)
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (y, m, d, s // 3600, s // 60 % 60, s % 60)


def parse(text):
    """UTC epoch seconds from an ISO 8601 date-time (fraction ignored, Z or +hh:mm offset);
    None if it is not one."""
    if type(text) is not str or len(text) < 19 or text[4] != "-" or text[10] not in "Tt ":
        return None
    try:
        y, mo, d = int(text[0:4]), int(text[5:7]), int(text[8:10])
        h, mi, s = int(text[11:13]), int(text[14:16]), int(text[17:19])
    except ValueError:
        return None
    if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and s < 61):
        return None
    t = _days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s
    rest = text[19:]
    if rest.startswith("."):
        i = 1
        while i < len(rest) and rest[i].isdigit():
            i += 1
        rest = rest[i:]
    if rest in ("Z", "z", ""):
        return t
    if len(rest) == 6 and rest[0] in "+-" and rest[3] == ":":
        try:
            off = int(rest[1:3]) * 3600 + int(rest[4:6]) * 60
        except ValueError:
            return None
        return t - off if rest[0] == "+" else t + off
    return None
