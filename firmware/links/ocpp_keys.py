# OCPP 1.6 configuration keys (§9 "Standard Configuration Key Names & Values") the charge
# point supports: GetConfiguration reads them, ChangeConfiguration validates and persists them
# (store record "ocppkeys", changed values only). The firmware's own settings stay in the one
# validated config (firmware/services/config.py): AuthorizationKey is written there, through
# config.check, and is never read back (OCPP security whitepaper: write-only).
from micropython import const

_B = const(0)  # bool
_I = const(1)  # int lo..hi
_L = const(2)  # comma separated list of measurands (lo: allowed tuple)
_S = const(3)  # string

RO = const(1)  # read-only
REBOOT = const(2)  # accepted, takes effect after a reboot / reconnect
HIDDEN = const(4)  # write-only: not in GetConfiguration

MEASURANDS = ("Energy.Active.Import.Register", "Power.Active.Import", "Current.Import",
              "Voltage", "Temperature")
PROFILES = "Core,SmartCharging,LocalAuthListManagement,RemoteTrigger,FirmwareManagement"

# key, kind, lo, hi, default, flags
KEYS = (
    ("AllowOfflineTxForUnknownId", _B, 0, 0, False, 0),
    ("AuthorizationCacheEnabled", _B, 0, 0, True, 0),
    ("AuthorizationKey", _S, 16, 40, "", HIDDEN | REBOOT),
    ("AuthorizeRemoteTxRequests", _B, 0, 0, False, 0),
    ("ChargeProfileMaxStackLevel", _I, 0, 0, 10, RO),
    ("ChargingScheduleAllowedChargingRateUnit", _S, 0, 0, "Current,Power", RO),
    ("ChargingScheduleMaxPeriods", _I, 0, 0, 24, RO),
    ("ClockAlignedDataInterval", _I, 0, 86400, 0, 0),
    ("ConnectionTimeOut", _I, 5, 600, 60, 0),
    ("ConnectorPhaseRotation", _S, 0, 0, "Unknown", RO),
    ("GetConfigurationMaxKeys", _I, 0, 0, 40, RO),
    ("HeartbeatInterval", _I, 10, 86400, 300, 0),
    ("LocalAuthListEnabled", _B, 0, 0, True, 0),
    ("LocalAuthListMaxLength", _I, 0, 0, 50, RO),
    ("LocalAuthorizeOffline", _B, 0, 0, True, 0),
    ("LocalPreAuthorize", _B, 0, 0, False, 0),
    ("MaxChargingProfilesInstalled", _I, 0, 0, 8, RO),
    ("MeterValuesAlignedData", _L, MEASURANDS, 0, "Energy.Active.Import.Register", 0),
    ("MeterValuesSampledData", _L, MEASURANDS, 0,
     "Energy.Active.Import.Register,Power.Active.Import,Current.Import", 0),
    ("MeterValueSampleInterval", _I, 0, 86400, 60, 0),
    ("NumberOfConnectors", _I, 0, 0, 1, RO),
    ("ResetRetries", _I, 0, 0, 0, RO),
    ("SendLocalListMaxLength", _I, 0, 0, 20, RO),
    ("StopTransactionOnEVSideDisconnect", _B, 0, 0, True, RO),
    ("StopTransactionOnInvalidId", _B, 0, 0, True, 0),
    ("StopTxnAlignedData", _L, MEASURANDS, 0, "", 0),
    ("StopTxnSampledData", _L, MEASURANDS, 0, "Energy.Active.Import.Register", 0),
    ("SupportedFeatureProfiles", _S, 0, 0, PROFILES, RO),
    ("TransactionMessageAttempts", _I, 1, 10, 3, 0),
    ("TransactionMessageRetryInterval", _I, 1, 3600, 60, 0),
    ("UnlockConnectorOnEVSideDisconnect", _B, 0, 0, True, RO),
    ("WebSocketPingInterval", _I, 0, 3600, 60, 0),
)
_REC = "ocppkeys"


def _row(key):
    for r in KEYS:
        if r[0] == key:
            return r
    return None


def _text(r, v):
    if r[1] == _B:
        return "true" if v else "false"
    return str(v)


class Keys:
    def __init__(self, store=None, config=None):
        self.store = store
        self.config = config  # firmware config: AuthorizationKey -> ocpp_password
        self._v = {}
        saved = store.get(_REC) if store is not None else None
        if type(saved) is dict:
            for k in saved:
                r = _row(k)
                if r is not None and not r[5] & RO and self._parse(r, saved[k])[1] is None:
                    self._v[k] = self._parse(r, saved[k])[0]

    def get(self, key):
        if key in self._v:
            return self._v[key]
        return _row(key)[4]

    def measurands(self, key):
        v = self.get(key)
        return [m for m in v.split(",") if m] if v else []

    def read(self, keys=None):
        """(configurationKey list, unknownKey list) for GetConfiguration."""
        out = []
        unknown = []
        names = keys if keys else [r[0] for r in KEYS]
        for k in names:
            r = _row(k)
            if r is None or r[5] & HIDDEN:
                unknown.append(k)
                continue
            out.append({"key": k, "readonly": bool(r[5] & RO), "value": _text(r, self.get(k))})
        return out, unknown

    @staticmethod
    def _parse(r, text):
        kind = r[1]
        if type(text) is not str:
            text = str(text)
        t = text.strip()
        if kind == _B:
            if t.lower() == "true":
                return True, None
            if t.lower() == "false":
                return False, None
            return None, "true or false"
        if kind == _I:
            try:
                v = int(t)
            except ValueError:
                return None, "an integer"
            if not r[2] <= v <= r[3]:
                return None, "%d..%d" % (r[2], r[3])
            return v, None
        if kind == _L:
            parts = [p.strip() for p in t.split(",") if p.strip()]
            for p in parts:
                if p not in r[2]:
                    return None, "measurands of " + ",".join(r[2])
            return ",".join(parts), None
        if not r[2] <= len(t) <= r[3]:
            return None, "%d..%d characters" % (r[2], r[3])
        return t, None

    def change(self, key, value):
        """ChangeConfiguration status: Accepted, Rejected, RebootRequired or NotSupported."""
        r = _row(key)
        if r is None:
            return "NotSupported"
        if r[5] & RO:
            return "Rejected"
        v, err = self._parse(r, value)
        if err:
            return "Rejected"
        if key == "AuthorizationKey":
            if self.config is None or self.config.set("ocpp_password", v):
                return "Rejected"  # the firmware config's own check said no
            return "RebootRequired"  # used from the next connection
        if self.get(key) != v:
            self._v[key] = v
            if self.store is not None:
                self.store.put(_REC, dict(self._v), 0)
        return "RebootRequired" if r[5] & REBOOT else "Accepted"
