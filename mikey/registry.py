"""MIKEY code points, named after the IANA "MIKEY Payload Name Spaces" registries."""

from __future__ import annotations

from enum import IntEnum


class DataType(IntEnum):
    """HDR data type (RFC 3830 §6.1, RFC 4650, RFC 4738, RFC 6043, RFC 6267, RFC 6509)."""

    PSK_INIT = 0
    PSK_RESP = 1
    PK_INIT = 2
    PK_RESP = 3
    DH_INIT = 4
    DH_RESP = 5
    ERROR = 6
    DHHMAC_INIT = 7
    DHHMAC_RESP = 8
    RSA_R_INIT = 9
    RSA_R_RESP = 10
    REQUEST_INIT_PSK = 11
    REQUEST_INIT_PK = 12
    REQUEST_RESP = 13
    TRANSFER_INIT = 14
    TRANSFER_RESP = 15
    RESOLVE_INIT_PSK = 16
    RESOLVE_INIT_PK = 17
    RESOLVE_RESP = 18
    REQUEST_KEY_PSK = 19
    REQUEST_KEY_PKE = 20
    REQUEST_KEY_RESP = 21
    I_MESSAGE_1 = 22
    R_MESSAGE_1 = 23
    I_MESSAGE_2 = 24
    R_MESSAGE_2 = 25
    SAKKE_MSG = 26


class PayloadType(IntEnum):
    """Next payload values (RFC 3830 §6.1 table, RFC 6043, RFC 6267, RFC 6509)."""

    LAST = 0
    KEMAC = 1
    PKE = 2
    DH = 3
    SIGN = 4
    T = 5
    ID = 6
    CERT = 7
    CHASH = 8
    V = 9
    SP = 10
    RAND = 11
    ERR = 12
    TR = 13
    IDR = 14
    RANDR = 15
    TP = 16
    TICKET = 17
    KEY_DATA = 20
    GENERAL_EXT = 21
    IBAKE = 22
    ESK = 23
    SK = 24
    ECCPT = 25
    SAKKE = 26


class PrfFunc(IntEnum):
    """PRF func (RFC 3830 §6.1; RFC 6043 §6.1)."""

    MIKEY_1 = 0
    PRF_HMAC_SHA_256 = 1


class CsIdMapType(IntEnum):
    """CS ID map type (RFC 3830 §6.1.1; RFC 4563; RFC 6043)."""

    SRTP_ID = 0
    EMPTY = 1
    GENERIC_ID = 2


class EncrAlg(IntEnum):
    """KEMAC encryption algorithm (RFC 3830 §6.2; RFC 6043)."""

    NULL = 0
    AES_CM_128 = 1
    AES_KW_128 = 2
    AES_CM_256 = 3


class MacAlg(IntEnum):
    """KEMAC / V MAC algorithm (RFC 3830 §6.2; RFC 6043)."""

    NULL = 0
    HMAC_SHA_1_160 = 1
    HMAC_SHA_256_256 = 2


MAC_LENGTH = {MacAlg.NULL: 0, MacAlg.HMAC_SHA_1_160: 20, MacAlg.HMAC_SHA_256_256: 32}


class PkeCache(IntEnum):
    """PKE envelope key cache indicator C (RFC 3830 §6.3)."""

    NO_CACHE = 0
    CACHE = 1
    CACHE_FOR_CSB = 2


class DhGroup(IntEnum):
    """DH group (RFC 3830 §6.4)."""

    OAKLEY_5 = 0
    OAKLEY_1 = 1
    OAKLEY_2 = 2


DH_VALUE_LENGTH = {DhGroup.OAKLEY_5: 192, DhGroup.OAKLEY_1: 96, DhGroup.OAKLEY_2: 128}


class SignType(IntEnum):
    """SIGN S type (RFC 3830 §6.5; RFC 6509)."""

    RSA_PKCS1_1_5 = 0
    RSA_PSS = 1
    ECCSI = 2


class TsType(IntEnum):
    """Timestamp type (RFC 3830 §6.6; RFC 6043)."""

    NTP_UTC = 0
    NTP = 1
    COUNTER = 2
    NTP_UTC_32 = 3


TS_LENGTH = {TsType.NTP_UTC: 8, TsType.NTP: 8, TsType.COUNTER: 4, TsType.NTP_UTC_32: 4}


class IdType(IntEnum):
    """ID type (RFC 3830 §6.7; RFC 6043)."""

    NAI = 0
    URI = 1
    BYTE_STRING = 2


class IdRole(IntEnum):
    """IDR role (RFC 6043 §6.6; RFC 6509)."""

    INITIATOR = 1
    RESPONDER = 2
    KMS = 3
    PSK = 4
    APPLICATION = 5
    INITIATOR_KMS = 6
    RESPONDER_KMS = 7


class CertType(IntEnum):
    """CERT type (RFC 3830 §6.7)."""

    X509V3 = 0
    X509V3_URL = 1
    X509V3_SIGN = 2
    X509V3_ENCR = 3


class HashFunc(IntEnum):
    """CHASH hash function (RFC 3830 §6.8; RFC 6043)."""

    SHA_1 = 0
    MD5 = 1
    SHA_256 = 2


HASH_LENGTH = {HashFunc.SHA_1: 20, HashFunc.MD5: 16, HashFunc.SHA_256: 32}


class ProtType(IntEnum):
    """SP protocol type (RFC 3830 §6.10; RFC 4442)."""

    SRTP = 0
    TESLA = 1


class SrtpParam(IntEnum):
    """SRTP policy parameter types (RFC 3830 §6.10.1; RFC 4771; RFC 7714)."""

    ENCR_ALG = 0
    ENCR_KEY_LEN = 1
    AUTH_ALG = 2
    AUTH_KEY_LEN = 3
    SALT_KEY_LEN = 4
    SRTP_PRF = 5
    KEY_DERIVATION_RATE = 6
    SRTP_ENCR = 7
    SRTCP_ENCR = 8
    FEC_ORDER = 9
    SRTP_AUTH = 10
    AUTH_TAG_LEN = 11
    PREFIX_LEN = 12
    ROC_TX_RATE = 13
    SRTP_AUTH_ALG = 14
    SRTCP_AUTH_ALG = 15
    SRTP_AUTH_KEY_LEN = 16
    SRTCP_AUTH_KEY_LEN = 17
    SRTP_AUTH_TAG_LEN = 18
    SRTCP_AUTH_TAG_LEN = 19
    AEAD_AUTH_TAG_LEN = 20


class SrtpEncrAlg(IntEnum):
    """SRTP encryption algorithm, SP parameter 0 (RFC 3830; RFC 5748; RFC 7714; RFC 8269)."""

    NULL = 0
    AES_CM = 1
    AES_F8 = 2
    SEED_CTR = 3
    SEED_CCM = 4
    SEED_GCM = 5
    AES_GCM = 6
    ARIA_CTR = 7
    ARIA_GCM = 8


class SrtpAuthAlg(IntEnum):
    """SRTP authentication algorithm, SP parameters 2, 14, 15 (RFC 3830; RFC 4771)."""

    NULL = 0
    HMAC_SHA_1 = 1
    RCCM1 = 2
    RCCM2 = 3
    RCCM3 = 4


class SrtpPrf(IntEnum):
    """SRTP PRF, SP parameter 5."""

    AES_CM = 0
    SEED_CTR = 1
    ARIA_CTR = 2


class ErrorNo(IntEnum):
    """ERR payload error numbers (RFC 3830 §6.12; RFC 4738; RFC 6043)."""

    AUTH_FAILURE = 0
    INVALID_TS = 1
    INVALID_PRF = 2
    INVALID_MAC = 3
    INVALID_EA = 4
    INVALID_HA = 5
    INVALID_DH = 6
    INVALID_ID = 7
    INVALID_CERT = 8
    INVALID_SP = 9
    INVALID_SPPAR = 10
    INVALID_DT = 11
    UNSPECIFIED = 12
    UNSUPPORTED_MESSAGE_TYPE = 13
    INVALID_TICKET = 14
    INVALID_TPPAR = 15


class KeyDataType(IntEnum):
    """Key data sub-payload type (RFC 3830 §6.13; RFC 6043; RFC 6267)."""

    TGK = 0
    TGK_SALT = 1
    TEK = 2
    TEK_SALT = 3
    GTGK = 4
    GTGK_SALT = 5
    MPK = 6
    K_PR = 7


class KvType(IntEnum):
    """Key validity type (RFC 3830 §6.13, §6.14)."""

    NULL = 0
    SPI = 1
    INTERVAL = 2


class GeneralExtType(IntEnum):
    """General extension type (RFC 3830 §6.15; RFC 4442; RFC 4563; RFC 4738; RFC 4909)."""

    VENDOR_ID = 0
    SDP_IDS = 1
    TESLA_I_KEY = 2
    KEY_ID = 3
    CSB_ID = 4
    OMA_BCAST = 5


# --- 3GPP code points (known to the strict codec only with ``threegpp=True``) ----------------


class IdRole3gpp(IntEnum):
    """ID roles 3GPP assigns for MCPTT/MCX MIKEY-SAKKE (TS 33.180 §E.2, Annex E).

    The KMS roles TS 33.180 uses are RFC 6509's (:attr:`IdRole.INITIATOR_KMS` 6,
    :attr:`IdRole.RESPONDER_KMS` 7); these are the MCX user identities (UIDs, 32 binary bytes
    derived per TS 33.180 §F.2.1).
    """

    UID_INITIATOR = 8
    UID_RESPONDER = 9


class GeneralExtType3gpp(IntEnum):
    """General extension types 3GPP uses (TS 33.180 §E.6, TS 33.179 §7.3)."""

    #: MCX security parameters: the encrypted key properties of a GMK/PCK/CSK (TS 33.180 §E.6)
    MCX_KEY_PARAMETERS = 7


class McpttKeyPurpose(IntEnum):
    """Purpose tag: the 4 most significant bits of a 3GPP key ID (TS 33.180 §F.1.x).

    In a MIKEY-SAKKE I_MESSAGE the CSB ID holds the key ID (GMK-ID, PCK-ID, CSK-ID, ...).
    """

    GMK = 0  # group master key
    PCK = 1  # private call key
    CSK = 2  # client-server key
    SPK = 3  # signalling protection key
    MKFC = 4  # MBMS key for control
    MSCCK = 5  # MBMS subchannel control key
    MUSIK = 6  # multicast signalling key


#: every ID role known under the 3GPP code points
ID_ROLES_3GPP: dict[int, IdRole | IdRole3gpp] = {
    **{int(r): r for r in IdRole},
    **{int(r): r for r in IdRole3gpp},
}
#: every general extension type known under the 3GPP code points
GENERAL_EXT_TYPES_3GPP: dict[int, GeneralExtType | GeneralExtType3gpp] = {
    **{int(t): t for t in GeneralExtType},
    **{int(t): t for t in GeneralExtType3gpp},
}
